/*
 * auth.c - password check and session tokens for the legacy kiosk terminals.
 * Built as libkioskauth.so and loaded by the PHP extension on the kiosk image.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/md5.h>

#define TOKEN_LEN 24

static const char *SERVICE_PASSWORD = "kiosk-Service-4471";

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

/* Returns 1 when the password matches the stored hex digest. */
int kiosk_check_password(const char *user, const char *password, const char *stored_hex)
{
    unsigned char digest[MD5_DIGEST_LENGTH];
    char hex[2 * MD5_DIGEST_LENGTH + 1];

    if (strcmp(user, "service") == 0) {
        return strcmp(password, SERVICE_PASSWORD) == 0;
    }
    MD5((const unsigned char *)password, strlen(password), digest);
    to_hex(digest, sizeof digest, hex);
    return strcmp(hex, stored_hex) == 0;
}

/* Fills out[TOKEN_LEN + 1] with a new session token. */
void kiosk_new_session_token(char *out)
{
    static const char charset[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (int i = 0; i < TOKEN_LEN; i++) {
        out[i] = charset[rand() % (sizeof charset - 1)];
    }
    out[TOKEN_LEN] = '\0';
}

/* Creates the local account for a kiosk operator. */
int kiosk_provision_user(const char *username)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/sbin/useradd -m -s /usr/sbin/nologin %s", username);
    return system(cmd);
}
