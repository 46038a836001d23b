#!/usr/bin/env python3
"""Polls the test guest's counter on several HOST:PORT addresses, each from its own thread every 10 ms,
until SIGTERM; then prints the longest time between two reads that saw the counter move on, in ms,
and whether it ever went back. The guest counts about every 100 ms, so a quiet run shows ~100-150 ms."""
import signal, sys, threading, time, urllib.request

reads, lock, stop = [], threading.Lock(), threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())

def poll(address):
    while not stop.is_set():
        try:
            # Stamped when asked: a guest answers with what it counted by then (a paused one answers late).
            asked = time.monotonic()
            value = int(urllib.request.urlopen(f"http://{address}/counter", timeout=1).read().strip())
            with lock:
                reads.append((asked, value))
        except Exception:
            pass
        time.sleep(0.01)

threads = [threading.Thread(target=poll, args=(a,), daemon=True) for a in sys.argv[1:]]
for t in threads:
    t.start()
while not stop.is_set():
    stop.wait(0.1)

reads.sort()
longest, backwards, last_value, last_move = 0.0, False, None, None
for at, value in reads:
    if last_value is None or value != last_value:
        if last_value is not None:
            backwards |= value < last_value
            longest = max(longest, at - last_move)
        last_value, last_move = value, at
print(f"{longest * 1000:.0f} {'backwards' if backwards else 'ok'}")
