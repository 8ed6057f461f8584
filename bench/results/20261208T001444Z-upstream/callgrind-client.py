"""Send N requests (raw bytes from a file) over C keep-alive connections, round-robin, one in flight per connection."""
import socket, sys, selectors
port, n, conns, kind = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
REQ = {
 "nginx": b"GET /api/items/1 HTTP/1.1\r\nHost: 127.0.0.1:18103\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: 127.0.0.1:18103\r\nX-Request-Id: d8debb9ec621e38bfeeaf63453579d2f\r\n\r\n",
 "isthmus": b"GET /api/items/1 HTTP/1.1\r\nhost: 127.0.0.1:18104\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: 127.0.0.1:18104\r\nx-request-id: 973af2055f2948c30000000000000000\r\ntraceparent: 00-190ad063808f0971eb2ff199f5138c1e-35ebbaee59ac6e37-01\r\n\r\n",
 "isthmus-notrace": b"GET /api/items/1 HTTP/1.1\r\nhost: 127.0.0.1:18104\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: 127.0.0.1:18104\r\nx-request-id: 973af2055f2948c30000000000000000\r\n\r\n",
 "direct": b"GET /api/items/1 HTTP/1.1\r\nHost: 127.0.0.1:18103\r\n\r\n",
}[kind]
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
sent = 0
for s in socks:
    s.sendall(REQ); sent += 1
done = 0
sel = selectors.DefaultSelector()
for s in socks: sel.register(s, selectors.EVENT_READ)
bufs = {s: b"" for s in socks}
while done < n:
    for key, _ in sel.select():
        s = key.fileobj
        d = s.recv(65536)
        bufs[s] += d
        while b"\r\n\r\nok" in bufs[s]:
            _, _, bufs[s] = bufs[s].partition(b"\r\n\r\nok")
            done += 1
            if sent < n:
                s.sendall(REQ); sent += 1
print("done", done)
