"""Fine-tuning: SFT pairs from training data and LoRA/QLoRA training with TRL + PEFT."""
