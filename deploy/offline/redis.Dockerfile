# Redis from Debian's package, for machines that cannot pull the official `redis` image. As the
# official image: `redis-server` on the PATH, data in /data (the working directory).
ARG BASE_IMAGE=volley-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
