/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "master-key-pkcs11.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>
#include <string.h>

#include "fileio.h"
#include "log.h"
#include "random-util.h"

#define DATA_KEY_SIZE 32
#define GCM_IV_SIZE 12
#define GCM_TAG_SIZE 16
#define SEALED_SIZE (GCM_IV_SIZE + DATA_KEY_SIZE + GCM_TAG_SIZE)
#define PIN_MAX 256
#define LABEL_MAX 128
#define SEAL_AAD "keyward data key v1"

typedef struct Token {
        CK_FUNCTION_LIST *module;
        bool initialized;
        CK_SESSION_HANDLE session;
        bool open;
        bool logged_in;
} Token;

static void token_close(Token *t) {
        if (t->logged_in)
                (void) t->module->C_Logout(t->session);
        if (t->open)
                (void) t->module->C_CloseSession(t->session);
        if (t->initialized)
                (void) p11_kit_module_finalize(t->module);
        if (t->module)
                p11_kit_module_release(t->module);
        *t = (Token){};
}

static int ckr_error(CK_RV rv, const char *what) {
        return log_error_errno(
                rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE ? EACCES : EIO, "PKCS#11 %s failed: %s",
                what, p11_kit_strerror(rv));
}

/* The PIN from pin-value= or the file pin-source= names (its first line). */
static int uri_pin(P11KitUri *uri, Secret **ret) {
        _cleanup_(secret_freep) Secret *file = NULL;
        const char *v = p11_kit_uri_get_pin_value(uri), *src = p11_kit_uri_get_pin_source(uri);
        size_t n;
        int r;

        if (v) {
                *ret = secret_new_copy(v, strlen(v));
                return *ret ? 0 : -ENOMEM;
        }
        if (!src)
                return log_error_errno(EINVAL, "The pkcs11: URI gives no pin-value= or pin-source=.");
        if (strncmp(src, "file:", 5) == 0)
                src += 5;
        r = read_secret_file(src, PIN_MAX, &file);
        if (r == -EPERM)
                return log_error_errno(r, "PIN file '%s' is readable by group or others; refusing it.", src);
        if (r < 0)
                return log_error_errno(r, "Failed to read the PIN file '%s': %m", src);
        n = strcspn((const char *) file->data, "\r\n");
        *ret = secret_new_copy(file->data, n);
        return *ret ? 0 : -ENOMEM;
}

static int token_open(P11KitUri *uri, bool rw, Token *t) {
        _cleanup_(secret_freep) Secret *pin = NULL;
        _cleanup_free_ CK_SLOT_ID *slots = NULL;
        const char *path = p11_kit_uri_get_module_path(uri);
        CK_ULONG n = 0;
        CK_RV rv;
        int r;

        if (!path)
                return log_error_errno(EINVAL, "The pkcs11: URI needs module-path=.");
        r = uri_pin(uri, &pin);
        if (r < 0)
                return r;

        t->module = p11_kit_module_load(path, 0);
        if (!t->module)
                return log_error_errno(
                        ENOENT, "Cannot load the PKCS#11 module '%s': %s", path, p11_kit_message());
        rv = p11_kit_module_initialize(t->module);
        if (rv != CKR_OK)
                return ckr_error(rv, "initialization");
        t->initialized = true;

        rv = t->module->C_GetSlotList(CK_TRUE, NULL, &n);
        if (rv == CKR_OK && n > 0) {
                slots = calloc(n, sizeof(CK_SLOT_ID));
                if (!slots)
                        return -ENOMEM;
                rv = t->module->C_GetSlotList(CK_TRUE, slots, &n);
        }
        if (rv != CKR_OK)
                return ckr_error(rv, "C_GetSlotList");
        for (CK_ULONG i = 0; i < n; i++) {
                CK_TOKEN_INFO info;

                if (t->module->C_GetTokenInfo(slots[i], &info) != CKR_OK ||
                    !p11_kit_uri_match_token_info(uri, &info))
                        continue;
                rv = t->module->C_OpenSession(
                        slots[i], CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0), NULL, NULL, &t->session);
                if (rv != CKR_OK)
                        return ckr_error(rv, "C_OpenSession");
                t->open = true;
                rv = t->module->C_Login(t->session, CKU_USER, pin->data, pin->size);
                if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
                        return ckr_error(rv, "login");
                t->logged_in = rv == CKR_OK;
                return 0;
        }
        return log_error_errno(ENXIO, "No PKCS#11 token matches the URI.");
}

static int find_object(Token *t, CK_OBJECT_CLASS class, const char *label, CK_OBJECT_HANDLE *ret) {
        CK_ATTRIBUTE tmpl[] = {
                {CKA_CLASS, &class, sizeof(class)},
                {CKA_LABEL, (void *) label, strlen(label)},
        };
        CK_OBJECT_HANDLE h[2];
        CK_ULONG n = 0;
        CK_RV rv;

        rv = t->module->C_FindObjectsInit(t->session, tmpl, ELEMENTSOF(tmpl));
        if (rv != CKR_OK)
                return ckr_error(rv, "C_FindObjectsInit");
        rv = t->module->C_FindObjects(t->session, h, ELEMENTSOF(h), &n);
        (void) t->module->C_FindObjectsFinal(t->session);
        if (rv != CKR_OK)
                return ckr_error(rv, "C_FindObjects");
        if (n > 1)
                return log_error_errno(
                        ENOTUNIQ, "The token holds more than one object labelled '%s'.", label);
        if (n == 0)
                return -ENOENT;
        *ret = h[0];
        return 0;
}

static int generate_key(Token *t, const char *label, CK_OBJECT_HANDLE *ret) {
        CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
        CK_ULONG len = 32;
        CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
        CK_ATTRIBUTE tmpl[] = {
                {CKA_LABEL, (void *) label, strlen(label)},
                {CKA_VALUE_LEN, &len, sizeof(len)},
                {CKA_TOKEN, &yes, sizeof(yes)},
                {CKA_PRIVATE, &yes, sizeof(yes)},
                {CKA_SENSITIVE, &yes, sizeof(yes)},
                {CKA_EXTRACTABLE, &no, sizeof(no)},
                {CKA_ENCRYPT, &yes, sizeof(yes)},
                {CKA_DECRYPT, &yes, sizeof(yes)},
        };
        CK_RV rv;

        rv = t->module->C_GenerateKey(t->session, &mech, tmpl, ELEMENTSOF(tmpl), ret);
        if (rv != CKR_OK)
                return ckr_error(rv, "generating the AES key");
        log_info("Generated AES-256 key '%s' on the token.", label);
        return 0;
}

static CK_MECHANISM gcm(CK_GCM_PARAMS *p, uint8_t *iv) {
        *p = (CK_GCM_PARAMS){
                .pIv = iv,
                .ulIvLen = GCM_IV_SIZE,
                .ulIvBits = GCM_IV_SIZE * 8,
                .pAAD = (unsigned char *) SEAL_AAD,
                .ulAADLen = strlen(SEAL_AAD),
                .ulTagBits = GCM_TAG_SIZE * 8,
        };
        return (CK_MECHANISM){CKM_AES_GCM, p, sizeof(*p)};
}

/* A new data key, sealed on the token and stored there as a private data object. */
static int seal_new(Token *t, CK_OBJECT_HANDLE key, const char *label, Secret **ret) {
        _cleanup_(secret_freep) Secret *dk = secret_new(DATA_KEY_SIZE);
        uint8_t sealed[SEALED_SIZE];
        CK_ULONG out = SEALED_SIZE - GCM_IV_SIZE;
        CK_OBJECT_CLASS class = CKO_DATA;
        CK_BBOOL yes = CK_TRUE;
        CK_OBJECT_HANDLE obj;
        CK_GCM_PARAMS p;
        CK_MECHANISM m;
        CK_RV rv;
        int r;

        if (!dk)
                return -ENOMEM;
        r = random_bytes(dk->data, dk->size);
        if (r < 0)
                return r;
        r = random_bytes(sealed, GCM_IV_SIZE);
        if (r < 0)
                return r;
        m = gcm(&p, sealed);
        rv = t->module->C_EncryptInit(t->session, &m, key);
        if (rv == CKR_OK)
                rv = t->module->C_Encrypt(t->session, dk->data, dk->size, sealed + GCM_IV_SIZE, &out);
        if (rv != CKR_OK || out != DATA_KEY_SIZE + GCM_TAG_SIZE)
                return rv != CKR_OK ? ckr_error(rv, "sealing the data key") : -EIO;

        CK_ATTRIBUTE tmpl[] = {
                {CKA_CLASS, &class, sizeof(class)},  {CKA_LABEL, (void *) label, strlen(label)},
                {CKA_TOKEN, &yes, sizeof(yes)},      {CKA_PRIVATE, &yes, sizeof(yes)},
                {CKA_VALUE, sealed, sizeof(sealed)},
        };
        rv = t->module->C_CreateObject(t->session, tmpl, ELEMENTSOF(tmpl), &obj);
        if (rv != CKR_OK)
                return ckr_error(rv, "storing the sealed data key");
        log_info("Stored a new data key, sealed by the token, as '%s'.", label);
        *ret = TAKE_PTR(dk);
        return 0;
}

static int unseal(Token *t, CK_OBJECT_HANDLE key, CK_OBJECT_HANDLE obj, Secret **ret) {
        _cleanup_(secret_freep) Secret *dk = secret_new(DATA_KEY_SIZE + GCM_TAG_SIZE);
        uint8_t sealed[SEALED_SIZE];
        CK_ATTRIBUTE value = {CKA_VALUE, sealed, sizeof(sealed)};
        CK_ULONG out;
        CK_GCM_PARAMS p;
        CK_MECHANISM m;
        CK_RV rv;

        if (!dk)
                return -ENOMEM;
        rv = t->module->C_GetAttributeValue(t->session, obj, &value, 1);
        if (rv != CKR_OK || value.ulValueLen != SEALED_SIZE)
                return log_error_errno(
                        EBADMSG, "The token's sealed data key is unreadable or not %d bytes.", SEALED_SIZE);
        out = dk->size;
        m = gcm(&p, sealed);
        rv = t->module->C_DecryptInit(t->session, &m, key);
        if (rv == CKR_OK)
                rv = t->module->C_Decrypt(
                        t->session, sealed + GCM_IV_SIZE, SEALED_SIZE - GCM_IV_SIZE, dk->data, &out);
        if (rv != CKR_OK || out != DATA_KEY_SIZE)
                return log_error_errno(
                        EBADMSG,
                        "The token's key does not open the sealed data key (%s): another token's, or damaged.",
                        rv != CKR_OK ? p11_kit_strerror(rv) : "wrong size");
        dk->size = DATA_KEY_SIZE;
        *ret = TAKE_PTR(dk);
        return 0;
}

int pkcs11_data_key_load(const char *uri_string, bool create, Secret **ret_key, bool *ret_created) {
        _cleanup_(secret_freep) Secret *dk = NULL;
        char label[LABEL_MAX], data_label[LABEL_MAX + 16];
        CK_OBJECT_HANDLE key, obj;
        P11KitUri *uri;
        CK_ATTRIBUTE *a;
        Token t = {};
        bool created = false;
        int r;

        uri = p11_kit_uri_new();
        if (!uri)
                return -ENOMEM;
        r = p11_kit_uri_parse(uri_string, P11_KIT_URI_FOR_ANY, uri);
        if (r != P11_KIT_URI_OK) {
                p11_kit_uri_free(uri);
                return log_error_errno(EINVAL, "Invalid pkcs11: URI: %s", p11_kit_uri_message(r));
        }
        a = p11_kit_uri_get_attribute(uri, CKA_LABEL);
        if (!a || a->ulValueLen == 0 || a->ulValueLen >= LABEL_MAX) {
                p11_kit_uri_free(uri);
                return log_error_errno(EINVAL, "The pkcs11: URI must name the key with object=.");
        }
        memcpy(label, a->pValue, a->ulValueLen);
        label[a->ulValueLen] = '\0';
        (void) snprintf(data_label, sizeof(data_label), "%s.data-key", label);

        r = token_open(uri, create, &t);
        p11_kit_uri_free(uri);
        if (r < 0)
                goto finish;

        r = find_object(&t, CKO_SECRET_KEY, label, &key);
        if (r == -ENOENT && create) {
                r = generate_key(&t, label, &key);
                created = r >= 0;
        } else if (r == -ENOENT)
                r = log_error_errno(
                        ENOKEY, "The token has no key labelled '%s'; run 'keywardd init'.", label);
        if (r < 0)
                goto finish;

        r = find_object(&t, CKO_DATA, data_label, &obj);
        if (r == -ENOENT && create) {
                r = seal_new(&t, key, data_label, &dk);
                created = created || r >= 0;
        } else if (r == -ENOENT)
                r = log_error_errno(
                        ENOKEY, "The token has no sealed data key '%s'; run 'keywardd init'.", data_label);
        else if (r >= 0)
                r = unseal(&t, key, obj, &dk);

finish:
        token_close(&t);
        if (r < 0)
                return r;
        *ret_key = TAKE_PTR(dk);
        if (ret_created)
                *ret_created = created;
        return 0;
}
