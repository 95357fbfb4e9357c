"""FT Studio: fine-tune language models with LoRA and QLoRA on your own workstation."""

__version__ = "0.1.0"
