"""Facts drawn from a snapshot: card metadata, licence texts, config and tokenizer signatures."""
