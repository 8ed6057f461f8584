# run.sh KIND N: uvicorn under callgrind (instrumentation from the start, counts dumped at exit)
set -e
kind=$1; n=$2; port=$((19000 + RANDOM % 500))
PY=/work/helper-uvicorn/bench/.venv-rd/bin/python
cd /work/helper-uvicorn/bench/http
valgrind --tool=callgrind --callgrind-out-file=/tmp/uvprobe/cg/cg-$kind-$n.out --dump-instr=no $PY -m uvicorn asgi_apps:django_app --host 127.0.0.1 --port $port --no-access-log --log-level warning --loop uvloop --http httptools --lifespan on $UVEXTRA > /tmp/uvprobe/cg/log-$kind-$n.txt 2>&1 &
vg=$!
for i in $(seq 1 600); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))" 2>/dev/null && break; sleep 0.2; done
python3 /tmp/uvprobe/cg/client.py $port $n 16 $kind
kill -INT $vg; wait $vg || true
grep -E "Collected|summary" /tmp/uvprobe/cg/log-$kind-$n.txt | tail -2
