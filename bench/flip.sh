#!/bin/sh
# The change of a fleet trial: replaces DIR/endpoints.yaml by the other of
# its two variants (endpoints.yaml.a / .b, made by gen_config.py --variants),
# written beside it under a dot name and renamed into place, as an editor
# or a deploy tool would. POSIX sh, no Python: its start-up would be timed.
# usage: flip.sh DIR
set -e
dir=$1
if [ -e "$dir/.variant-b" ]; then next=a; rm "$dir/.variant-b"; else next=b; touch "$dir/.variant-b"; fi
cp "$dir/.endpoints.yaml.$next" "$dir/.endpoints.yaml.tmp"
mv "$dir/.endpoints.yaml.tmp" "$dir/endpoints.yaml"
