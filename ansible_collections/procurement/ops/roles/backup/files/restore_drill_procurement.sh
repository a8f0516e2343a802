#!/bin/bash
# /opt/scripts/restore_drill_procurement.sh [ARCHIVE]
#
# Proves that a backup restores. Takes the newest procurement_backup_*.tar.gz
# (or ARCHIVE), restores its procurement_db.sql into a scratch database on a
# throwaway PostgreSQL server started from a temporary folder (the live
# server is never touched), compares the rows per table with the counts the
# backup recorded, then drops the scratch database, stops the server and
# records pass or fail for monitoring. Installed by the backup role; the
# settings come from /etc/procurement/backup.conf.
set -Eeuo pipefail
umask 077

CONFIG=${PROCUREMENT_BACKUP_CONFIG:-/etc/procurement/backup.conf}
if [[ ! -r $CONFIG ]]; then
    echo "restore drill FAILED: cannot read the settings file $CONFIG" >&2
    exit 2
fi
# shellcheck source=/dev/null
. "$CONFIG"

if [[ $(id -u) -eq 0 && ${BACKUP_USER:-root} != root ]]; then
    exec runuser -u "$BACKUP_USER" -- "$0" "$@"
fi

: "${BACKUP_DIR:?BACKUP_DIR is not set in $CONFIG}"
STATE_DIR=${STATE_DIR:-/var/lib/procurement-backup}
TEXTFILE_DIR=${TEXTFILE_DIR:-}
if [[ -z ${PG_BINDIR:-} ]]; then
    PG_BINDIR=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)
    PG_BINDIR=${PG_BINDIR:-/usr/bin}
fi
SCRATCH_DB=procurement_restore_drill
STEP="start"
WORK=""
ARCHIVE=""

write_metrics() {
    local ok=$1 now tmp last_success=0
    [[ -n $TEXTFILE_DIR && -d $TEXTFILE_DIR && -w $TEXTFILE_DIR ]] || return 0
    now=$(date +%s)
    if ((ok)); then
        last_success=$now
        echo "$now" >"$STATE_DIR/drill_last_success"
    elif [[ -r $STATE_DIR/drill_last_success ]]; then
        last_success=$(<"$STATE_DIR/drill_last_success")
    fi
    tmp=$(mktemp "$TEXTFILE_DIR/.procurement_restore_drill.XXXXXX")
    cat >"$tmp" <<METRICS
# HELP procurement_restore_drill_last_run_timestamp_seconds End of the last restore drill.
# TYPE procurement_restore_drill_last_run_timestamp_seconds gauge
procurement_restore_drill_last_run_timestamp_seconds $now
# HELP procurement_restore_drill_last_success 1 if the last restore drill passed, else 0.
# TYPE procurement_restore_drill_last_success gauge
procurement_restore_drill_last_success $ok
# HELP procurement_restore_drill_last_success_timestamp_seconds End of the last restore drill that passed.
# TYPE procurement_restore_drill_last_success_timestamp_seconds gauge
procurement_restore_drill_last_success_timestamp_seconds $last_success
METRICS
    chmod 0644 "$tmp"
    mv -f "$tmp" "$TEXTFILE_DIR/procurement_restore_drill.prom"
}

stop_server() {
    if [[ -n $WORK && -f $WORK/data/postmaster.pid ]]; then
        "$PG_BINDIR/pg_ctl" -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
}

on_exit() {
    local rc=$?
    stop_server
    [[ -n $WORK ]] && rm -rf -- "$WORK"
    if ((rc == 0)); then
        write_metrics 1 || true
    else
        echo "restore drill FAILED while trying to $STEP (exit $rc)${ARCHIVE:+ for $ARCHIVE}" >&2
        write_metrics 0 || true
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 1' INT TERM

fail() {
    echo "restore drill: $*" >&2
    exit 1
}

STEP="find the backup to restore"
mkdir -p -- "$STATE_DIR"
exec 9>"$STATE_DIR/drill.lock"
flock -n 9 || fail "another restore drill is running"
if (($# > 0)); then
    ARCHIVE=$1
else
    ARCHIVE=$(find "$BACKUP_DIR" -maxdepth 1 -type f -name 'procurement_backup_*.tar.gz' | sort | tail -n 1)
fi
[[ -n $ARCHIVE && -r $ARCHIVE ]] || fail "no readable backup in $BACKUP_DIR"

WORK=$(mktemp -d "${DRILL_WORK_DIR:-/var/tmp}/procurement-drill.XXXXXX")
mkdir "$WORK/archive"

STEP="extract $(basename "$ARCHIVE")"
tar -xzf "$ARCHIVE" -C "$WORK/archive" ./procurement_db.sql ./manifest.txt

STEP="start a scratch PostgreSQL server"
"$PG_BINDIR/initdb" --pgdata="$WORK/data" --username=postgres --auth=trust --encoding=UTF8 --no-sync >/dev/null
"$PG_BINDIR/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w -t 60 \
    -o "-c listen_addresses='' -c unix_socket_directories='$WORK' -c fsync=off -c full_page_writes=off -c jit=off" \
    start >/dev/null || fail "the scratch server did not start: $(tail -n 5 "$WORK/server.log")"
export PGHOST=$WORK PGPORT=5432
psql_scratch() { "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

STEP="restore into the scratch database"
owner=$(sed -n 's/^db_user=//p' "$WORK/archive/manifest.txt")
owner=${owner:-procurement_user}
psql_scratch -U postgres -d postgres -c "CREATE ROLE \"$owner\" LOGIN" -c "CREATE DATABASE $SCRATCH_DB OWNER \"$owner\""
psql_scratch -U "$owner" -d "$SCRATCH_DB" -f "$WORK/archive/procurement_db.sql" >/dev/null

STEP="compare the rows per table with the backup's manifest"
checked=0
while IFS='=' read -r key expected; do
    table=${key#rows.}
    actual=$(psql_scratch -U postgres -d "$SCRATCH_DB" -At -c "SELECT count(*) FROM public.\"$table\"")
    [[ $actual == "$expected" ]] || fail "table $table has $actual rows after the restore, the backup recorded $expected"
    checked=$((checked + 1))
done < <(grep '^rows\.' "$WORK/archive/manifest.txt")
((checked > 0)) || fail "the manifest of $ARCHIVE lists no tables"

STEP="drop the scratch database"
psql_scratch -U postgres -d postgres -c "DROP DATABASE $SCRATCH_DB"
stop_server
echo "restore drill: $(basename "$ARCHIVE") restored, $checked tables match the rows recorded at backup time"
