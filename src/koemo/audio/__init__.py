"""Audio: reading wav files, mel + delta features and their store, pretrained speech encoders
and their state cache, voice activity detection."""
