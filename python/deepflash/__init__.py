"""deepflash."""
