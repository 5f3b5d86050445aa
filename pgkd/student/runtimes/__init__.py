"""How a frozen encoder turns texts into vectors: one file per runtime against `base.EncoderRuntime`."""
