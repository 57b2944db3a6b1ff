# syntax=docker/dockerfile:1
# alicertd in a container: the daemon by default, or one cycle with `--run-now`.
#
#   docker build -t alicertd .
#   docker run -d --name alicertd \
#     -v alicertd-state:/var/lib/alicertd \
#     -v /srv/alicertd/config.toml:/etc/alicertd/config.toml:ro \
#     -e ALIBABA_CLOUD_ACCESS_KEY_ID -e ALIBABA_CLOUD_ACCESS_KEY_SECRET \
#     alicertd
#   docker run --rm -v alicertd-state:/var/lib/alicertd -v …:/etc/alicertd/config.toml:ro \
#     -e … alicertd --run-now            # one cycle, exit 0 / 1 / 2 as documented
#   docker exec alicertd alicertd status
#
# Arguments after the image name go straight to `alicertd` (ENTRYPOINT, no CMD), so every
# subcommand and flag works the same as on a host. Secrets come from the environment (-e or
# --env-file), never from build arguments or image layers. A bind-mounted state directory must
# be owned by uid 10001 and mode 0700; a named volume inherits that from the image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --------------------------------------------------------------------------- builder
# Builds the project wheel and installs it with its dependencies into a self-contained venv;
# only that venv reaches the final image (no build tools, no pip cache, no sources; pip and
# setuptools are removed from it: the daemon needs neither).
FROM ${PYTHON_IMAGE} AS builder
# Where pip finds packages, for a build host that uses a mirror or a local index instead of
# the default one: `--build-arg PIP_INDEX_URL=…` (and the others, as in pip's own PIP_*
# variables). Unset, pip uses its defaults. Build arguments of this stage stay in the builder:
# the final image keeps none of them (still, put no credentials in them).
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_TRUSTED_HOST
ARG PIP_CERT
ARG PIP_CONSTRAINT
ARG PIP_DEFAULT_TIMEOUT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY daemon ./daemon
COPY providers ./providers
# The sandbox is part of the wheel (make demo, the tests) but not of the image: it carries a demo
# fixture with sandbox-only keys and is no use in production.
COPY sandbox ./sandbox
RUN python -m venv /opt/alicertd \
 && /opt/alicertd/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
 && /opt/alicertd/bin/pip install /tmp/wheels/alicertd-*.whl \
 && /opt/alicertd/bin/python -m pip uninstall -q -y pip setuptools \
 && rm -rf /opt/alicertd/lib/python3*/site-packages/sandbox \
 && /opt/alicertd/bin/alicertd --help >/dev/null

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="alicertd" \
      org.opencontainers.image.description="ACME certificates for Alibaba Cloud: Alidns DNS-01, deployed to the services that serve them" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 alicertd \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/alicertd --shell /usr/sbin/nologin alicertd \
 && install -d -m 0700 -o 10001 -g 10001 /var/lib/alicertd \
 && install -d -m 0755 /etc/alicertd
COPY --from=builder /opt/alicertd /opt/alicertd
COPY config/alicertd.example.toml /etc/alicertd/config.example.toml
ENV PATH=/opt/alicertd/bin:$PATH \
    ALICERTD_CONFIG=/etc/alicertd/config.toml \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /var/lib/alicertd
VOLUME /var/lib/alicertd
STOPSIGNAL SIGTERM
# `status` reads the config and the state directory only (no network, no lock): it fails when
# either has become unreadable. Renewal problems are alerts (notify, metrics), not restarts.
HEALTHCHECK --interval=5m --timeout=30s --start-period=1m --retries=3 \
    CMD ["alicertd", "status"]
ENTRYPOINT ["alicertd"]
