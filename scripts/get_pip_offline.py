"""Stand-in for the get-pip.py that ansible-test downloads to put pip into its test virtualenvs.

ansible-test fetches that script from ci-files.testing.ansible.com, which a machine that reaches only
package mirrors cannot. scripts/sanity.sh puts this file where ansible-test caches the script. It does
what get-pip.py does: puts pip into the running interpreter (from the interpreter's own ensurepip
wheel) and then installs what it was asked for (`pip==X`, from the package index as usual). get-pip's
own --no-setuptools and --no-wheel mean "do not install those", which is already the case here.
"""

import ensurepip
import os
import runpy
import sys

saved = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
# ensurepip points pip at no configuration (PIP_CONFIG_FILE=/dev/null) in this process; the install
# below reads the machine's, as get-pip.py's does (a mirror, a CA bundle).
os.environ.clear()
os.environ.update(saved)
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install", *args]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
