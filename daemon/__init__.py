"""alicertd: certificate automation for Alibaba Cloud."""

__version__ = "0.1.0"
