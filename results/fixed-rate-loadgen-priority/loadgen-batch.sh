#!/bin/sh
exec chrt --batch 0 $(dirname "$0")/../../target/release/ringtail-loadgen "$@"
