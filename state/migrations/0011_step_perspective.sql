-- Seed 000's model fields of a step: whether its images show another camera perspective
-- (perspective_change), whether that perspective is masked out (mask_perspective), whether the
-- step's model still needs training, and the classes (labels) the step's model knows.
-- "Delete a step's perspective" clears the first two.

ALTER TABLE steps ADD COLUMN perspective_change BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE steps ADD COLUMN mask_perspective BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE steps ADD COLUMN training_required BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE steps ADD COLUMN classes VARCHAR NOT NULL DEFAULT '[]';
