"""Configuration for the (fictional) ACME architecture. An example file: originscan never imports it."""


class AcmeConfig:
    model_type = "acme"

    def __init__(self, hidden_size=1024, num_hidden_layers=12, **kwargs):
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
