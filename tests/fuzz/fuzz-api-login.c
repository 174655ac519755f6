/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "api-login.h"
#include "fuzz.h"

/* A POST /v0/auth/login/ body, as the login route decodes it. The first byte says whether the
 * client proved itself as a machine (so that its rhost field counts). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *names[] = {(char *) "host1.example.com", NULL};
        _cleanup_(login_job_freep) LoginJob *j = NULL;
        _cleanup_(form_done) Form form = FORM_NULL;
        ApiResult res = API_RESULT_INIT;
        bool machine;
        int r;

        if (size < 1 || size > FUZZ_INPUT_MAX)
                return 0;
        machine = data[0] & 1;
        if (form_parse((const char *) data + 1, size - 1, &form) < 0)
                return 0;

        r = api_login_begin(
                &(ApiLogin){
                        .form = &form,
                        .remote_addr = "192.0.2.1:443",
                        .machine_names = machine ? names : NULL,
                },
                &j, &res);
        if (r < 0 && r != -ENOMEM)
                __builtin_trap();
        if (j) {
                /* A job has a user and a password, neither empty nor holding a NUL, and a source. */
                if (res.code != 0 || !j->user || !j->password || j->password->size == 0 || !j->source ||
                    strlen(j->user) == 0)
                        __builtin_trap();
                if (j->machine && !machine)
                        __builtin_trap();
        } else if (r == 0 && res.http_status != 400 && res.http_status != 500)
                __builtin_trap();
        api_result_done(&res);
        return 0;
}
