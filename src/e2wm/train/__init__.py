"""Learning from embodied experiences: diagonal Fisher information and EWC-LoRA finetuning."""
