#!/bin/sh
# The change of a "one node's own resources" trial: swaps DIR/own-0.yaml
# (node load-0's own cluster, made by gen_config.py --own) between its two
# variants, renamed into place. Only node load-0 should be sent anything.
# usage: flip_own.sh DIR
set -e
dir=$1
if [ -e "$dir/.own-variant-b" ]; then next=a; rm "$dir/.own-variant-b"; else next=b; touch "$dir/.own-variant-b"; fi
cp "$dir/.own-0.yaml.$next" "$dir/.own-0.yaml.tmp"
mv "$dir/.own-0.yaml.tmp" "$dir/own-0.yaml"
