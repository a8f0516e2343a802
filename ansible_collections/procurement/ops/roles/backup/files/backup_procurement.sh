#!/bin/bash
# /opt/scripts/backup_procurement.sh
#
# The operations manual's database backup (备份恢复 / 数据库备份), made safe to
# run unattended. Installed by the backup role; the settings come from
# /etc/procurement/backup.conf (or $PROCUREMENT_BACKUP_CONFIG).
#
# One run:
#   1. dumps the database to procurement_db.sql (plain SQL, restorable with
#      the manual's `psql ... < procurement_db.sql`),
#   2. copies the application's configuration into config/,
#   3. packs both, with a manifest of row counts per table, into
#      procurement_backup_<YYYYmmdd_HHMMSS>.tar.gz,
#   4. checks the archive and renames it into place,
#   5. removes backups older than the retention, and only then
#   6. records the outcome for monitoring (node_exporter textfile).
#
# A failed run exits non-zero, says why on stderr (the journal under
# systemd), removes its own partial files and deletes nothing else.
set -Eeuo pipefail
umask 027

CONFIG=${PROCUREMENT_BACKUP_CONFIG:-/etc/procurement/backup.conf}
if [[ ! -r $CONFIG ]]; then
    echo "backup FAILED: cannot read the settings file $CONFIG" >&2
    exit 2
fi
# shellcheck source=/dev/null
. "$CONFIG"

# Run as the backup account even when started by root, so that every
# archive has one owner and the restore drill can read it.
if [[ $(id -u) -eq 0 && ${BACKUP_USER:-root} != root ]]; then
    exec runuser -u "$BACKUP_USER" -- "$0" "$@"
fi

: "${BACKUP_DIR:?BACKUP_DIR is not set in $CONFIG}"
: "${DB_NAME:?DB_NAME is not set in $CONFIG}"
: "${DB_USER:?DB_USER is not set in $CONFIG}"
DB_HOST=${DB_HOST:-localhost}
DB_PORT=${DB_PORT:-5432}
RETENTION_DAYS=${RETENTION_DAYS:-7}
STATE_DIR=${STATE_DIR:-/var/lib/procurement-backup}
TEXTFILE_DIR=${TEXTFILE_DIR:-}
CUSTOM_DUMP=${CUSTOM_DUMP:-false}
if [[ -z ${CONFIG_PATHS+x} ]]; then CONFIG_PATHS=(); fi
if [[ -z ${OFFSITE_TARGETS+x} ]]; then OFFSITE_TARGETS=(); fi
export PGHOST=$DB_HOST PGPORT=$DB_PORT PGUSER=$DB_USER PGDATABASE=$DB_NAME
export PGSSLMODE=${DB_SSLMODE:-prefer} PGCONNECT_TIMEOUT=${DB_CONNECT_TIMEOUT:-10}
[[ -n ${PGPASSFILE:-} ]] && export PGPASSFILE

STARTED=$(date +%s)
STAMP=$(date +%Y%m%d_%H%M%S)
NAME=procurement_backup_$STAMP.tar.gz
WORK=$BACKUP_DIR/.work_$STAMP
PARTIAL=$BACKUP_DIR/.$NAME.partial
STEP="start"
SIZE=0
KEPT=0

say() { echo "backup: $*"; }

# The textfile is replaced atomically; the success marker only changes
# after a backup that passed every check.
write_metrics() {
    local ok=$1 now tmp table count
    [[ -n $TEXTFILE_DIR && -d $TEXTFILE_DIR && -w $TEXTFILE_DIR ]] || return 0
    now=$(date +%s)
    local last_success=0 last_size=0 last_duration=0
    if [[ -r $STATE_DIR/last_success ]]; then
        # shellcheck source=/dev/null
        . <(grep -E '^(last_success|last_size|last_duration)=[0-9]+$' "$STATE_DIR/last_success")
    fi
    tmp=$(mktemp "$TEXTFILE_DIR/.procurement_backup.XXXXXX")
    {
        echo "# HELP procurement_backup_last_success_timestamp_seconds End of the last backup that passed its checks."
        echo "# TYPE procurement_backup_last_success_timestamp_seconds gauge"
        echo "procurement_backup_last_success_timestamp_seconds $last_success"
        echo "# HELP procurement_backup_last_run_timestamp_seconds End of the last backup run, successful or not."
        echo "# TYPE procurement_backup_last_run_timestamp_seconds gauge"
        echo "procurement_backup_last_run_timestamp_seconds $now"
        echo "# HELP procurement_backup_last_run_success 1 if the last backup run succeeded, else 0."
        echo "# TYPE procurement_backup_last_run_success gauge"
        echo "procurement_backup_last_run_success $ok"
        echo "# HELP procurement_backup_last_size_bytes Size of the last successful backup archive."
        echo "# TYPE procurement_backup_last_size_bytes gauge"
        echo "procurement_backup_last_size_bytes $last_size"
        echo "# HELP procurement_backup_last_duration_seconds Duration of the last successful backup."
        echo "# TYPE procurement_backup_last_duration_seconds gauge"
        echo "procurement_backup_last_duration_seconds $last_duration"
        echo "# HELP procurement_backup_table_rows Rows per table in the last successful backup."
        echo "# TYPE procurement_backup_table_rows gauge"
        if [[ -r $STATE_DIR/last_success.rows ]]; then
            while read -r table count; do
                echo "procurement_backup_table_rows{table=\"$table\"} $count"
            done <"$STATE_DIR/last_success.rows"
        fi
    } >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$TEXTFILE_DIR/procurement_backup.prom"
}

on_exit() {
    local rc=$?
    rm -rf -- "$WORK" "$PARTIAL"
    if ((rc != 0 && KEPT)); then
        echo "backup: $BACKUP_DIR/$NAME is kept, but copying it off this host failed (exit $rc)" >&2
    elif ((rc != 0)); then
        echo "backup FAILED while trying to $STEP (exit $rc): no new archive was kept and no older backup was deleted" >&2
        write_metrics 0 || true
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 1' INT TERM

fail() {
    echo "backup: $*" >&2
    exit 1
}

STEP="prepare $BACKUP_DIR"
mkdir -p -- "$BACKUP_DIR" || fail "cannot create $BACKUP_DIR as $(id -un)"
[[ -w $BACKUP_DIR && -x $BACKUP_DIR ]] || fail "$BACKUP_DIR is not writable by $(id -un)"
mkdir -p -- "$STATE_DIR"
exec 9>"$STATE_DIR/lock"
flock -n 9 || fail "another backup is running (lock $STATE_DIR/lock)"
# Holding the lock, any work folder or partial archive is a killed run's.
find "$BACKUP_DIR" -maxdepth 1 \( -name '.work_*' -o -name '.procurement_backup_*.partial' \) \
    -exec rm -rf -- {} + 2>/dev/null || true

STEP="list the tables of $DB_NAME on $DB_HOST:$DB_PORT"
TABLE_LIST=$(psql -X --no-password -At -v ON_ERROR_STOP=1 \
    -c "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
mapfile -t TABLES <<<"$TABLE_LIST"
[[ -n $TABLE_LIST ]] || TABLES=()
((${#TABLES[@]} > 0)) || fail "database $DB_NAME has no tables in schema public"
REVISION=$(psql -X --no-password -At -c "SELECT version_num FROM alembic_version" 2>/dev/null || true)

mkdir -m 0700 -- "$WORK"
CONTENT=$WORK/content
mkdir -p -- "$CONTENT/config"

STEP="dump the database $DB_NAME"
# --clean --if-exists: the manual's `psql ... < procurement_db.sql` works
# on an empty database and on the live one alike. The rows of each table
# are counted from the COPY sections as the dump streams to disk; the
# archive is synced at the end, so the dump itself skips its fsync.
pg_dump --no-password --clean --if-exists --no-sync |
    tee "$CONTENT/procurement_db.sql" |
    awk '
        /^COPY [^ ]+ / { table = $2; sub(/^public\./, "", table); rows = 0; copying = 1; next }
        copying && $0 == "\\." { print table, rows; copying = 0; next }
        copying { rows++ }
    ' >"$WORK/rows"
if [[ $CUSTOM_DUMP == true ]]; then
    pg_dump --no-password --format=custom --no-sync --file "$CONTENT/procurement_db.dump"
fi

STEP="check that the dump holds every table"
for table in "${TABLES[@]}"; do
    grep -q "^$table " "$WORK/rows" || fail "the dump has no data section for table $table"
done

STEP="copy the configuration"
for path in "${CONFIG_PATHS[@]}"; do
    if [[ -e $path ]]; then
        cp -r --parents "$path" "$CONTENT/config/"
    else
        say "not on this host, not copied: $path"
    fi
done

STEP="write the manifest"
{
    echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host=$(hostname -f 2>/dev/null || hostname)"
    echo "database=$DB_NAME"
    echo "db_user=$DB_USER"
    echo "schema_revision=$REVISION"
    echo "app_release=$(basename "$(readlink -f "${APP_CURRENT:-/opt/procurement/current}")" 2>/dev/null || true)"
    sed 's/^/rows./; s/ /=/' "$WORK/rows"
} >"$CONTENT/manifest.txt"

STEP="pack the archive"
LEVEL=${COMPRESS_LEVEL:-1}
if command -v pigz >/dev/null; then COMPRESS=(pigz -c "-$LEVEL"); else COMPRESS=(gzip -c "-$LEVEL"); fi
tar -C "$CONTENT" -cf - . | "${COMPRESS[@]}" >"$PARTIAL"

STEP="check the archive"
if command -v pigz >/dev/null; then UNPACK=(pigz -dc); else UNPACK=(gzip -dc); fi
"${UNPACK[@]}" -- "$PARTIAL" | tar -tf - >"$WORK/listing"
grep -qx './procurement_db.sql' "$WORK/listing" || fail "procurement_db.sql is missing from the archive"
grep -qx './manifest.txt' "$WORK/listing" || fail "manifest.txt is missing from the archive"
sync -- "$PARTIAL"

STEP="rename the archive into place"
chmod 0640 -- "$PARTIAL"
mv -- "$PARTIAL" "$BACKUP_DIR/$NAME"
sync -- "$BACKUP_DIR"
SIZE=$(stat -c %s -- "$BACKUP_DIR/$NAME")
say "wrote $BACKUP_DIR/$NAME ($SIZE bytes, ${#TABLES[@]} tables, schema ${REVISION:-unknown})"

STEP="record the success"
FINISHED=$(date +%s)
cp -- "$WORK/rows" "$STATE_DIR/.last_success.rows"
printf 'last_success=%s\nlast_size=%s\nlast_duration=%s\narchive=%s\n' \
    "$FINISHED" "$SIZE" "$((FINISHED - STARTED))" "$BACKUP_DIR/$NAME" >"$STATE_DIR/.last_success"
mv -f -- "$STATE_DIR/.last_success.rows" "$STATE_DIR/last_success.rows"
mv -f -- "$STATE_DIR/.last_success" "$STATE_DIR/last_success"

STEP="apply the retention of $RETENTION_DAYS days"
find "$BACKUP_DIR" -maxdepth 1 -type f -name 'procurement_backup_*.tar.gz' \
    -mmin +$((RETENTION_DAYS * 1440)) -printf 'backup: removed %p (older than the retention)\n' -delete
# Copies other hosts sent here age out the same way.
if [[ -n ${OFFSITE_DIR:-} && -d $OFFSITE_DIR ]]; then
    find "$OFFSITE_DIR" -mindepth 2 -maxdepth 2 -type f -name 'procurement_backup_*.tar.gz' \
        -mmin +$((RETENTION_DAYS * 1440)) -printf 'backup: removed %p (older than the retention)\n' -delete
fi

write_metrics 1
KEPT=1

OFFSITE_FAILED=0
for target in "${OFFSITE_TARGETS[@]}"; do
    STEP="copy the archive to $target"
    if rsync -t --chmod=F0640 -e "ssh -o BatchMode=yes ${OFFSITE_SSH_OPTIONS:-}" -- \
        "$BACKUP_DIR/$NAME" "$target/"; then
        say "copied to $target"
    else
        echo "backup: copy to $target FAILED; the local archive is kept" >&2
        OFFSITE_FAILED=1
    fi
done
((OFFSITE_FAILED == 0)) || exit 1
