# RabbitMQ from Debian's package, for machines that cannot pull the official `rabbitmq` image.
# It behaves as the official image does where docker-compose.yml relies on it: management
# plugin on, RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS honoured, logs on stdout, data in
# /var/lib/rabbitmq, `rabbitmq-diagnostics` for the healthcheck.
ARG BASE_IMAGE=volley-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && echo '[rabbitmq_management,rabbitmq_prometheus].' > /etc/rabbitmq/enabled_plugins \
 && printf '%s\n' 'loopback_users.guest = false' 'listeners.tcp.default = 5672' \
      'management.tcp.port = 15672' > /etc/rabbitmq/rabbitmq.conf \
 && chown -R rabbitmq:rabbitmq /etc/rabbitmq /var/lib/rabbitmq
ENV RABBITMQ_LOGS=- HOME=/var/lib/rabbitmq \
    PATH=/usr/lib/rabbitmq/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER rabbitmq
EXPOSE 5672 15672
CMD ["rabbitmq-server"]
