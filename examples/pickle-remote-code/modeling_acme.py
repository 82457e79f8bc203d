"""Modelling code for the (fictional) ACME architecture. An example file: originscan never imports it.

Loaders run files like this one when a user passes trust_remote_code=True, which is what security.remote_code
is about.
"""


class AcmeForCausalLM:
    def __init__(self, config):
        self.config = config
