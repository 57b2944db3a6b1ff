"""alicertd's plugins: DNS-01 providers and deploy targets (see :mod:`providers.base`).

Alibaba Cloud access shared by the built-in providers lives in :mod:`providers.aliyun`.
"""
