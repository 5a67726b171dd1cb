"""Network helpers of the end-to-end tests: a client network namespace the
test makes (the only place a Service IP is reached from), and the local
cluster's address plan (cluster.sh).

Network safety: a ClientNamespace has one route, the cluster's /15 through
the host; nothing else is reachable from it. It is removed on exit.
"""

import ipaddress
import random
import subprocess
import sys
import uuid

CLUSTER_CIDR = ipaddress.ip_network("198.18.0.0/15")
SERVICE_CIDR = ipaddress.ip_network("198.18.0.0/20")
# The part of the /15 the local cluster leaves to tests (cluster.sh).
CLIENT_RANGE = ipaddress.ip_network("198.18.16.0/20")

# One TCP exchange: connect, read a line, print it. Run inside the client ns.
CLIENT = r"""
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2) as c:
        c.settimeout(2)
        print(c.makefile().readline().strip())
except OSError as e:
    print("ERR", e)
    sys.exit(1)
"""



# One HTTP GET with a fresh connection: prints the status and the body's
# first line, or "ERR <why>" (exit 1). Run inside the client namespace.
HTTP_GET = r"""
import http.client, sys
try:
    c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=5)
    c.request("GET", sys.argv[3])
    r = c.getresponse()
    print(r.status, r.read().decode(errors="replace").strip().splitlines()[0:1])
except OSError as e:
    print("ERR", e)
    sys.exit(1)
"""


def sh(*args, check=True, timeout=30):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=check,
                          timeout=timeout)


def link_exists(name):
    return sh("ip", "link", "show", "dev", name, check=False).returncode == 0


def kube_proxy_serves(cluster):
    return not (cluster.data_dir / "run" / "kube-proxy.skipped").exists()


class ClientNamespace:
    """A network namespace made by the test, joined to the host by a veth
    pair on a /30 from CLIENT_RANGE, with one route: the cluster's /15
    through the host. Nothing else is reachable from it."""

    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.name = f"wlt-cli-{tag}"
        self.host_if, self.ns_if = f"wlth{tag}", f"wltc{tag}"
        subnets = list(CLIENT_RANGE.subnets(new_prefix=30))[64:]  # past 198.18.16.0/24
        net = random.choice(subnets)
        self.host_ip, self.ip = [str(a) for a in list(net.hosts())[:2]]
        self.made = False

    def __enter__(self):
        sh("ip", "netns", "add", self.name)
        self.made = True
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        sh("ip", "link", "set", self.ns_if, "netns", self.name)
        sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        sh("ip", "link", "set", self.host_if, "up")
        self.exec("ip", "addr", "add", f"{self.ip}/30", "dev", self.ns_if)
        self.exec("ip", "link", "set", self.ns_if, "up")
        self.exec("ip", "link", "set", "lo", "up")
        self.exec("ip", "route", "add", str(CLUSTER_CIDR), "via", self.host_ip)
        return self

    def exec(self, *args, check=True, timeout=30):
        return sh("ip", "netns", "exec", self.name, *args, check=check, timeout=timeout)

    def ask(self, ip, port):
        """One exchange with ip:port from inside; the answer or None."""
        p = self.exec(sys.executable, "-c", CLIENT, ip, port, check=False, timeout=10)
        return p.stdout.strip() if p.returncode == 0 else None

    def __exit__(self, *exc):
        if link_exists(self.host_if):
            sh("ip", "link", "del", self.host_if, check=False)
        if self.made:
            sh("ip", "netns", "del", self.name, check=False)

    def http_get(self, ip, port, path):
        """(status, first line of the body) of one GET from inside, or
        (None, why) when it failed to connect or to answer."""
        p = self.exec(sys.executable, "-c", HTTP_GET, ip, port, path, check=False, timeout=15)
        out = p.stdout.strip()
        if p.returncode != 0 or not out or out.startswith("ERR"):
            return None, out or p.stderr.strip()
        status, _, rest = out.partition(" ")
        line = rest.strip("[]'\" ")
        return int(status), line

    def popen(self, *args):
        """A process inside the namespace (the caller waits for it)."""
        return subprocess.Popen(["ip", "netns", "exec", self.name, *[str(a) for a in args]],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
