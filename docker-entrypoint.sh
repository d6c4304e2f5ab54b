#!/bin/sh
# One image, several processes: the first argument says which one runs.
#
#   web                  gunicorn on 0.0.0.0:8000 (the default); extra arguments go to gunicorn
#   worker               RQ worker on the portal's queues, with the scheduler
#   cron                 the one periodic scheduler (run exactly one)
#   migrate              apply database migrations, then exit
#   wait-for-migrations  block until the database schema matches this image (init containers)
#   manage ARGS          any other management command, e.g. `manage rqsuspend`
#   anything else        run as a command, e.g. `sh`
#
# Every branch uses `exec`, so the process gets PID 1 and receives SIGTERM from the container
# runtime directly: gunicorn then drains requests and the RQ worker finishes its current job.
set -eu

cmd="${1:-web}"
[ "$#" -gt 0 ] && shift

case "$cmd" in
web)
  # gthread workers: requests mostly wait on the database and Redis, so threads serve htmx polling
  # cheaply. Scale out with more pods, not more workers per pod. The heartbeat file goes to
  # /dev/shm because the root filesystem is read-only and a disk-backed /tmp can stall workers.
  # The control socket is off: it would need a writable home directory and nothing uses it.
  # portal/gunicorn_conf.py trusts X-Forwarded-* headers only from TRUSTED_PROXY_NETWORKS and
  # writes the access log to stdout with share-link tokens redacted.
  exec gunicorn portal.wsgi:application \
    --config python:portal.gunicorn_conf \
    --bind 0.0.0.0:8000 \
    --worker-class gthread \
    --workers "${WEB_CONCURRENCY:-2}" \
    --threads "${GUNICORN_THREADS:-4}" \
    --timeout "${GUNICORN_TIMEOUT:-30}" \
    --graceful-timeout 25 \
    --keep-alive 5 \
    --max-requests 2000 \
    --max-requests-jitter 200 \
    --worker-tmp-dir /dev/shm \
    --no-control-socket \
    "$@"
  ;;
worker)
  exec python manage.py runworker "$@"
  ;;
cron)
  exec python manage.py runcron "$@"
  ;;
migrate)
  exec python manage.py migrate --noinput "$@"
  ;;
wait-for-migrations)
  # `migrate --check` only reads: it exits non-zero while migrations are unapplied or the
  # database is unreachable, so new pods wait for the migration Job instead of crash-looping.
  until python manage.py migrate --check >/dev/null; do
    echo "waiting for database migrations to be applied" >&2
    sleep 5
  done
  ;;
manage)
  exec python manage.py "$@"
  ;;
*)
  exec "$cmd" "$@"
  ;;
esac
