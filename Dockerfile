# supd as the entrypoint of a small agent stack (the demo: an MCP gateway and a worker).
#
#   docker build -t supd .
#   docker run -d --name stack supd && docker exec stack supctl status
#
# Build arguments: BASE (the runtime image), BUILDER (the image that compiles supd), UID/GID
# (of the non-root `dev` user that runs the programs). When the context holds
# target/docker/supd and supctl (built on the host), the build stage takes them as they are:
# that is how the tests build this same runtime stage without a registry.
ARG BASE=debian:bookworm-slim
ARG BUILDER=rust:1-slim-bookworm

FROM ${BUILDER} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo.lock keeps this COPY valid when target/docker is absent.
COPY Cargo.lock target/docker* ./prebuilt/
RUN mkdir /out \
    && if [ -x prebuilt/supd ] && [ -x prebuilt/supctl ]; then cp prebuilt/supd prebuilt/supctl /out/; \
       else cargo build --release --locked && cp target/release/supd target/release/supctl /out/; fi

FROM ${BASE} AS runtime
ARG UID=1000
ARG GID=1000
# The demo programs need python3; a base that has it skips the install.
RUN command -v python3 >/dev/null \
    || (apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*)
RUN groupadd -g "${GID}" dev && useradd -m -u "${UID}" -g "${GID}" -s /bin/bash dev
COPY --from=build /out/supd /out/supctl /usr/local/bin/
# supctl answers as supervisorctl under that name (scripts, Ansible's and Salt's modules).
RUN ln -s supctl /usr/local/bin/supervisorctl
COPY conf.d/ /etc/supd/
COPY examples/demo/ /opt/supd/demo/
EXPOSE 9001
# supd stays root (PID 1) so it can start each program as its user, `dev` by default.
ENTRYPOINT ["/usr/local/bin/supd"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["supctl", "health"]
