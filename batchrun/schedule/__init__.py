"""`batchrun schedule`: a job run every night by cron or a systemd user timer.

timing    --at / --days / --until parsed, and rendered as crontab fields and a systemd OnCalendar
nightly   the shell command one night runs (env file, folder, log file, exit codes cron should not mail)
cron      the crontab line and the marked block `--install` keeps in the user's crontab
systemd   the service and timer pair, and the user unit folder `--install` writes
envfile   the key's environment file (mode 0600, placeholder names only; batchrun never writes a key)
actions   print, install, list, remove: what the `schedule` command does, with crontab and systemd injected
"""
