#!/bin/bash
# /opt/scripts/backup_procurement_app.sh
#
# The operations manual's application backup (备份恢复 / 应用备份): the whole
# application folder in /backup/procurement_app_<YYYYmmdd>.tar.gz. Paths in
# the archive are relative to the folder, and procurement_app_backup.tar.gz
# points at the newest archive, so the manual's restore
#   tar -xzf /backup/procurement_app_backup.tar.gz -C /opt/procurement
# puts every file back where it was. Written under a temporary name, checked,
# then renamed; archives older than the retention go only after a success.
# Installed by the backup role; settings from /etc/procurement/backup.conf.
set -Eeuo pipefail
umask 027

CONFIG=${PROCUREMENT_BACKUP_CONFIG:-/etc/procurement/backup.conf}
if [[ ! -r $CONFIG ]]; then
    echo "app backup FAILED: cannot read the settings file $CONFIG" >&2
    exit 2
fi
# shellcheck source=/dev/null
. "$CONFIG"

if [[ $(id -u) -eq 0 && ${BACKUP_USER:-root} != root ]]; then
    exec runuser -u "$BACKUP_USER" -- "$0" "$@"
fi

APP_HOME=${APP_HOME:-/opt/procurement}
APP_BACKUP_DIR=${APP_BACKUP_DIR:-/backup}
RETENTION_DAYS=${RETENTION_DAYS:-7}
NAME=procurement_app_$(date +%Y%m%d).tar.gz
LATEST=procurement_app_backup.tar.gz
PARTIAL=$APP_BACKUP_DIR/.$NAME.partial
PARTIAL_LINK=$APP_BACKUP_DIR/.$LATEST.partial
STEP="start"

on_exit() {
    local rc=$?
    rm -f -- "$PARTIAL" "$PARTIAL_LINK"
    if ((rc != 0)); then
        echo "app backup FAILED while trying to $STEP (exit $rc): no new archive was kept and no older one was deleted" >&2
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 1' INT TERM

STEP="prepare $APP_BACKUP_DIR"
[[ -d $APP_HOME ]] || { echo "app backup: $APP_HOME does not exist" >&2; exit 1; }
[[ -d $APP_BACKUP_DIR && -w $APP_BACKUP_DIR ]] || {
    echo "app backup: $APP_BACKUP_DIR is not a folder writable by $(id -un)" >&2
    exit 1
}

STEP="pack $APP_HOME"
if command -v pigz >/dev/null; then COMPRESS=(pigz -c); else COMPRESS=(gzip -c); fi
# ./.ansible holds the working files of Ansible sessions that became the
# service user (mode 0700, unreadable here); they are not the application's.
tar -C "$APP_HOME" --exclude=./.ansible -cf - . | "${COMPRESS[@]}" >"$PARTIAL"

STEP="check the archive"
gzip -t -- "$PARTIAL"
sync -- "$PARTIAL"

STEP="rename the archive into place"
chmod 0640 -- "$PARTIAL"
mv -f -- "$PARTIAL" "$APP_BACKUP_DIR/$NAME"
echo "app backup: wrote $APP_BACKUP_DIR/$NAME ($(stat -c %s -- "$APP_BACKUP_DIR/$NAME") bytes)"

STEP="point $LATEST at the new archive"
ln -sfn -- "$NAME" "$PARTIAL_LINK"
mv -fT -- "$PARTIAL_LINK" "$APP_BACKUP_DIR/$LATEST"

STEP="apply the retention of $RETENTION_DAYS days"
find "$APP_BACKUP_DIR" -maxdepth 1 -type f -name 'procurement_app_*.tar.gz' \
    -mmin +$((RETENTION_DAYS * 1440)) -printf 'app backup: removed %p (older than the retention)\n' -delete
