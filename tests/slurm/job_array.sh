#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine runs `stemkit separate --shard K/3` as a 3-task
# job array over a small nested catalog; then every track must have been separated exactly once
# and `stemkit merge-reports` must find the catalog complete.
#
# Needs root and Debian's slurm-wlm and munge (.ci/run installs them). Usage:
#   tests/slurm/job_array.sh [path/to/stemkit]      (default target/release/stemkit)
# Exit 0 on success; on failure the daemons' logs are printed.
set -euo pipefail
STEMKIT=$(realpath "${1:-target/release/stemkit}")
D=$(mktemp -d /tmp/stemkit-slurm.XXXXXX)
chmod 755 "$D"
export SLURM_CONF=$D/slurm.conf
PIDS=()
cleanup() {
  local rc=$?
  local pids=()
  for p in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munge/munged.pid"; do
    [[ -f $p ]] && pids+=("$(cat "$p")") && kill "${pids[-1]}" 2>/dev/null || true
  done
  # Let the daemons finish writing their state before the folder goes (up to 5 s).
  for _ in $(seq 50); do
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.1
  done
  if [[ $rc -ne 0 ]]; then
    echo "== slurm test failed (rc $rc); logs:"
    tail -n 30 "$D"/log/* 2>/dev/null || true
  fi
  rm -rf "$D" || true
  exit $rc
}
trap cleanup EXIT

echo "== munge"
mkdir -p "$D/munge" "$D/state" "$D/spool" "$D/log"
chmod 711 "$D/munge"
mungekey --create --keyfile="$D/munge/munge.key" --force
chmod 400 "$D/munge/munge.key"
munged --key-file="$D/munge/munge.key" --socket="$D/munge/munge.sock" \
  --pid-file="$D/munge/munged.pid" --log-file="$D/log/munged.log" --seed-file="$D/munge/seed"

echo "== slurm.conf"
HOST=$(hostname -s)
NODE=$(slurmd -C | head -1 | sed 's/ UpTime=.*//')
cat > "$SLURM_CONF" <<EOF
ClusterName=ci
SlurmctldHost=$HOST(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
$NODE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
echo "CgroupPlugin=cgroup/v1" > "$D/cgroup.conf"

echo "== slurmctld, slurmd"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
  [[ $state == idle ]] && break
  sleep 1
done
[[ $state == idle ]] || { echo "node never became idle (state '$state')"; exit 1; }

echo "== catalog"
CAT="$D/catalog"
OUT="$D/stems"
"$STEMKIT" demo -o "$D/gen" --seconds 2 --stems hpr --device cpu > /dev/null
TRACKS=("Album A/disc 1/01 First.wav" "Album A/disc 1/-02 dash.wav" "Album A/03 Ünïcødé.wav"
        "Album B/04 four.wav" "Album B/deep/er/05.wav" "06 root.wav" "Album B/07 seven.wav")
for t in "${TRACKS[@]}"; do
  mkdir -p "$CAT/$(dirname "$t")"
  cp "$D/gen/demo_mix.wav" "$CAT/$t"
done

echo "== sbatch --array=0-2"
cat > "$D/shard.sh" <<EOF
#!/bin/bash
exec "$STEMKIT" separate --stems hpr --device cpu --quiet --shard \${SLURM_ARRAY_TASK_ID}/3 -o "$OUT" -- "$CAT"
EOF
chmod +x "$D/shard.sh"
JID=$(sbatch --parsable --array=0-2 -o "$D/log/slurm-%A_%a.out" "$D/shard.sh")
echo "job $JID"
for _ in $(seq 180); do
  [[ -z $(squeue -h -j "$JID" 2>/dev/null) ]] && break
  sleep 1
done
[[ -z $(squeue -h -j "$JID" 2>/dev/null) ]] || { echo "job $JID still queued or running"; squeue; exit 1; }

echo "== check: every track separated exactly once, merged report complete"
for k in 0 1 2; do
  grep -q '"summary"' "$OUT/stemkit-report-shard-$k-of-3.jsonl" \
    || { echo "shard $k did not finish"; cat "$D"/log/slurm-*; exit 1; }
done
"$STEMKIT" merge-reports "$OUT"/stemkit-report-shard-*-of-3.jsonl -o "$OUT/merged.jsonl" --json > "$D/merged.json"
python3 - "$D/merged.json" "$OUT" "${TRACKS[@]}" <<'PY'
import json, os, sys
merged = json.load(open(sys.argv[1]))
out, tracks = sys.argv[2], sys.argv[3:]
assert merged["tracks"] == len(tracks), merged
assert merged["ok"] == len(tracks) and merged["failed"] == 0, merged
assert merged["separated_more_than_once"] == [], merged
assert merged["runs"] == 3, merged
lines = [json.loads(l) for l in open(os.path.join(out, "merged.jsonl"))]
rels = sorted(l["rel"] for l in lines if "rel" in l)
assert rels == sorted(tracks), (rels, tracks)
for t in tracks:
    d, name = os.path.split(t)
    stem = os.path.splitext(name)[0]
    for s in ("harmonic", "percussive"):
        p = os.path.join(out, d, f"{stem}_{s}_48k24b.wav")
        assert os.path.getsize(p) > 44, p
print(f"ok: {len(tracks)} tracks, 3 shards, each track separated exactly once")
PY
