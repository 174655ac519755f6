#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keywardd rekey on PostgreSQL (started by the test): online under a reading and writing
# load, as test-server-rekey.sh does it on SQLite (rekey-lib.sh).

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rekey-lib.sh"

pg_start
KWD_DB=$PG_URL
rekey_under_load

done_testing
