"""What the devices supervisor runs for a station config: one child per device."""

from __future__ import annotations

from actors.gpio import GpioActor
from actors.plc import PlcActor
from actors.supervisor import ChildSpec
from controller.config import StationConfig

__all__ = ["SECTION_CHILDREN", "device_specs", "section_specs"]

# Which children a config section makes: (supervisor, child id prefix).
SECTION_CHILDREN = {"plcs": ("devices", "plc:"), "gpio": ("devices", "gpio")}


def section_specs(config: StationConfig, section: str) -> list[ChildSpec]:
    if section == "plcs":
        # The key is the PLC's whole config: an edit restarts that PLC and no other.
        return [ChildSpec.of(PlcActor, f"plc:{plc.name}", plc, key=plc)
                for plc in config.plcs if plc.enabled]
    if section == "gpio":
        gpio = config.gpio
        if not (gpio.buttons or gpio.leds):
            return []
        return [ChildSpec.of(GpioActor, "gpio", gpio, key=gpio)]
    raise ValueError(f"section {section!r} makes no devices")


def device_specs(config: StationConfig) -> list[ChildSpec]:
    return [spec for section in SECTION_CHILDREN for spec in section_specs(config, section)]
