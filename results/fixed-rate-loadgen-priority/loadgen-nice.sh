#!/bin/sh
exec nice -n 19 $(dirname "$0")/../../target/release/ringtail-loadgen "$@"
