#!/bin/sh
# The bundled Python in isolated mode (-I: no PYTHON* variables, no user site-packages, not the
# current directory on the path) writing no bytecode under /opt (-B; the package ships it).
exec @PREFIX@/python/bin/python3.11 -I -B -m @MODULE@ "$@"
