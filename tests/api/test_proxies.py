"""The client-address rule (``serving.api.proxies``): the socket's peer, unless it is a configured
proxy; then the rightmost ``X-Forwarded-For`` hop that is not a trusted proxy. (The running API is
tested with it in test_hardening.py.)"""

from __future__ import annotations

import pytest

from serving.api.proxies import TrustedProxies


def test_no_proxy_configured_means_the_peer_whatever_the_header_says():
    assert TrustedProxies().client("127.0.0.1", "203.0.113.9") == "127.0.0.1"
    assert not TrustedProxies([" ", ""])


def test_a_peer_that_is_not_a_trusted_proxy_is_the_client():
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client("192.0.2.7", "203.0.113.9, 10.0.0.1") == "192.0.2.7"


def test_the_rightmost_untrusted_hop_is_the_client():
    proxies = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"])
    assert proxies.client("127.0.0.1", "203.0.113.9") == "203.0.113.9"
    # the client wrote the left hops itself; its real address is the one our proxies appended
    assert proxies.client("127.0.0.1", "1.2.3.4, 198.51.100.7, 203.0.113.9, 10.1.2.3") == "203.0.113.9"
    assert proxies.client("127.0.0.1", "10.9.9.9, 10.1.2.3") == "10.9.9.9"  # only proxies: the farthest
    assert proxies.client("::ffff:127.0.0.1", "2001:db8::1, 2001:db9::5") == "2001:db9::5"
    assert proxies.client("127.0.0.1", "[2001:db9::7]") == "2001:db9::7"
    assert proxies.client("127.0.0.1", "garbage, 10.1.2.3") == "10.1.2.3"  # never a string we cannot vouch for
    assert proxies.client("127.0.0.1", "") == "127.0.0.1"


def test_a_bad_entry_is_refused_with_its_name():
    with pytest.raises(ValueError, match="COURTSIDE_TRUSTED_PROXIES: 'proxy.example'"):
        TrustedProxies(["127.0.0.1", "proxy.example"])
