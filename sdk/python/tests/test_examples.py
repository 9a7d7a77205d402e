"""The seed's SDK example in Python (examples/seed.py) and README's Python example run
against the live Herald as they are written. Two placeholders are filled in before
running, and nothing else is touched: the seed's API key ``lector_xxx`` becomes a real
tenant key (Herald's keys are random, so no server can accept that literal), and in
README's example, whose ``test`` call really sends, the endpoint URL becomes a receiver on
127.0.0.1. The base URL comes from $HERALD_BASE_URL, which the client reads when none is
given."""

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Tuple

from _support import HeraldTestCase, Receiver, base_url, fresh_tenant

PACKAGE_DIR = Path(__file__).resolve().parent.parent
README = PACKAGE_DIR.parent.parent / "README.md"
SEED_URL = "https://tu-servidor.com/webhook"


class ExamplesTest(HeraldTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        tenant_id, cls.client, admin = fresh_tenant("py-examples")
        cls.key = admin.tenants.keys.create(tenant_id, name="examples").token
        cls.receiver = Receiver()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.receiver.close()

    def run_code(self, code: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
        env = {**os.environ, "HERALD_BASE_URL": base_url()}
        env.pop("HERALD_API_KEY", None)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_DIR), env.get("PYTHONPATH")]))
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)

    def with_key(self, code: str) -> str:
        quoted = re.findall(r"""(['"])lector_xxx\1""", code)
        self.assertEqual(len(quoted), 1, "the key placeholder appears once")
        return re.sub(r"""(['"])lector_xxx\1""", repr(self.key), code)

    def prints_id_and_secret(self, stdout: str) -> int:
        found = re.search(r"(?m)^Webhook creado: (\d+)$", stdout)
        self.assertIsNotNone(found, stdout)
        self.assertRegex(stdout, r"(?m)^Secret: whsec_[A-Za-z0-9+/=]{44}$")
        return int(found.group(1)) if found else 0

    def test_the_seed_example_prints_an_id_and_a_secret_then_tests_what_it_deleted(self) -> None:
        code = (PACKAGE_DIR / "examples" / "seed.py").read_text()
        # Its opening comment says why it ends in a 404, and where the working order is.
        head = code.split("from herald_webhooks")[0]
        self.assertIn("404", head)
        self.assertIn("README", head)
        run = self.run_code(self.with_key(code))
        webhook_id = self.prints_id_and_secret(run.stdout)
        # The seed deletes the webhook before testing it; Herald answers that webhook with
        # 404, which surfaces as the HeraldError the last line raises.
        self.assertEqual(run.returncode, 1, run.stderr)
        self.assertIn("herald_webhooks.HeraldError: webhook not found (HTTP 404, not_found)", run.stderr)
        self.assertHeraldError(404, "not_found", lambda: self.client.webhooks.get(webhook_id))

    def test_the_readme_python_example_runs_to_the_end(self) -> None:
        readme = README.read_text()
        section = readme.split("\n## Client libraries\n")[1].split("\n## ")[0]
        block = re.search(r"```python\n(.*?)```", section, re.S)
        self.assertIsNotNone(block, 'README.md has a python block in "Client libraries"')
        code = block.group(1) if block else ""
        self.assertIn("from herald_webhooks import Herald", code)
        self.assertEqual(code.count(SEED_URL), 1, "the seed URL appears once")
        run = self.run_code(self.with_key(code).replace(SEED_URL, self.receiver.url("/readme")))
        self.assertEqual(run.returncode, 0, run.stderr)
        webhook_id = self.prints_id_and_secret(run.stdout)
        self.assertHeraldError(404, "not_found", lambda: self.client.webhooks.get(webhook_id))
