/*
 * cr_tls.h - TLS contexts and peer identity checks (OpenSSL 3).
 *
 * Every gateway-to-gateway connection is TLS 1.3 with mutual certificate
 * authentication: both sides present a certificate, both verify the other's
 * against the configured trust anchor, and both check that the verified
 * certificate names the expected site (subjectAltName DNS entry, or the
 * subject CN when the certificate has no DNS names). There is no plaintext
 * mode and no fallback to older protocol versions.
 */
#ifndef WM_CRYPTO_CR_TLS_H
#define WM_CRYPTO_CR_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#define CR_ERR_LEN 256

/*
 * Builds a context used for both dialled and accepted connections: TLS 1.3
 * only, peer verification required, certificate and key loaded and matched,
 * and the site's own certificate checked to carry site_name. Returns NULL
 * and a message in err on failure.
 */
SSL_CTX *cr_tls_ctx_new(const char *site_name, const char *cert_path,
    const char *key_path, const char *ca_path, char *err, size_t errlen);

/*
 * Creates the SSL object of one connection. When expect_name is not NULL
 * (the dialling side, which knows whom it called) the handshake itself
 * fails unless the peer's certificate carries that name. Returns NULL on
 * allocation failure.
 */
SSL *cr_tls_new(SSL_CTX *ctx, const char *expect_name);

/*
 * True if the handshake on ssl completed with a verified peer certificate
 * that carries name.
 */
bool cr_tls_peer_is(SSL *ssl, const char *name);

/*
 * Describes the peer's certificate subject (for logs) into buf; returns buf.
 * "(no certificate)" when there is none.
 */
const char *cr_tls_peer_subject(SSL *ssl, char *buf, size_t len);

#endif
