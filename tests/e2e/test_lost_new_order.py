"""A newOrder whose answer is lost after Pebble created the order, through the real CLI: the
order is found again in the account's orders list (Pebble 2.10 lists every order but the
invalid ones, oldest first, three a page) instead of being ordered a second time.

The loss is real: a loopback proxy in front of Pebble (tests/support/acme_proxy.py) forwards the
newOrder, lets Pebble answer 201, then closes the connection without passing the answer on.
"""

from __future__ import annotations

import threading

import pytest

from tests.e2e.helpers import pebble_issued, pebble_orders, run_ok
from tests.support.acme_proxy import PebbleProxy
from tests.support.world import World

pytestmark = pytest.mark.pebble
NEW_ORDER_PATH = "/order-plz"  # Pebble's newOrder endpoint


class NewOrderLosingProxy(PebbleProxy):
    """Drops the answer to the first newOrder Pebble created an order for (a 201; a badNonce
    refusal did nothing and is passed on)."""

    def __init__(self, pebble):
        super().__init__(pebble)
        self.lost = threading.Event()

    def drop(self, method, path, response):
        if method == "POST" and path == NEW_ORDER_PATH and response.status_code == 201 and not self.lost.is_set():
            self.lost.set()
            return True
        return False


def test_a_lost_new_order_answer_is_read_back_and_only_one_order_is_made(world, tmp_path):
    with NewOrderLosingProxy(world.pebble) as proxy:
        config = world.write_config(tmp_path, [world.cert("www", ["example.com", "*.example.com"])],
                                    extra={"acme": {"directory": proxy.directory_url}})

        run = run_ok(world, config)

    assert proxy.lost.is_set(), "the proxy never lost a newOrder answer"
    assert pebble_orders(world) == 1, "newOrder was sent again after its answer was lost"
    assert "recovered the lost newOrder answer" in run.stderr
    assert World.chain_serial(tmp_path / "state", "www") == pebble_issued(world)[0]
    assert world.txt_records() == []
