/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A login as a program would run it, for tests: pam-session SERVICE USER [AS] authenticates
 * USER with the password read from stdin's first line, opens a session (for AS when given,
 * as sudo does: it authenticates the caller and opens the target's session), reports each
 * step on stdout, then closes the session when stdin gives another line (or ends). Run it
 * under pam_wrapper to pick the stack. */

#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char password[4096];

static int conversation(int n, const struct pam_message **msg, struct pam_response **ret, void *userdata) {
        struct pam_response *resp = calloc((size_t) n, sizeof(struct pam_response));

        if (!resp)
                return PAM_BUF_ERR;
        for (int i = 0; i < n; i++)
                if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF)
                        resp[i].resp = strdup(password);
        *ret = resp;
        return PAM_SUCCESS;
}

int main(int argc, char **argv) {
        struct pam_conv conv = {.conv = conversation};
        pam_handle_t *h = NULL;
        char line[64];
        int r;

        if (argc != 3 && argc != 4) {
                fprintf(stderr, "usage: %s SERVICE USER [AS] < password\n", argv[0]);
                return 2;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (!fgets(password, sizeof(password), stdin))
                return 2;
        password[strcspn(password, "\n")] = '\0';

        r = pam_start(argv[1], argv[2], &conv, &h);
        if (r != PAM_SUCCESS) {
                printf("start: %s\n", pam_strerror(h, r));
                return 1;
        }
        /* Where the person comes from, as sshd sets it. */
        if (secure_getenv("PAM_SESSION_RHOST"))
                (void) pam_set_item(h, PAM_RHOST, secure_getenv("PAM_SESSION_RHOST"));
        r = pam_authenticate(h, 0);
        printf("auth: %s\n", pam_strerror(h, r));
        if (r == PAM_SUCCESS && argc == 4)
                r = pam_set_item(h, PAM_USER, argv[3]);
        if (r == PAM_SUCCESS) {
                r = pam_open_session(h, 0);
                printf("session: %s\n", pam_strerror(h, r));
                printf("env: %s\n", pam_getenv(h, "KEYWARD_LOGIN") ? "KEYWARD_LOGIN left" : "clean");
                if (!fgets(line, sizeof(line), stdin))
                        line[0] = '\0'; /* stdin ended: close all the same */
                if (r == PAM_SUCCESS)
                        printf("close: %s\n", pam_strerror(h, pam_close_session(h, 0)));
        }
        pam_end(h, r);
        return r == PAM_SUCCESS ? 0 : 1;
}
