"""Lab networks: containers that talk to each other, in namespaces of their own.

    plan.py      what a lab is, as data: subnet, addresses, netem values, /etc/hosts (no kernel)
    labs.py      the sandbox's side: plans networks, runs `mrunc network …`, writes hosts files
    lab.py       the runtime's side: pyroute2 netlink requests, each one recorded
    step.py      the `network` step between create and start (`mrunc run --network FILE`)
    commands.py  `mrunc network up|down|show|sweep`
    topology.py  the lab as a diagram (pure: data in, SVG out)

Nothing here touches the host's network namespace: a lab's bridge lives in a namespace made for
it, and each veth pair is born there — unless the user asks for NAT (nat=True: an uplink, a
route, ip_forward and a masquerade rule in the host's namespace, announced, and undone on removal). Only lab.py imports pyroute2 (~150 ms), and only the
processes that send netlink requests import lab.py — never `mrunc create`.
"""
