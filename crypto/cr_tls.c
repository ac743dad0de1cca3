#include "cr_tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

static void
drain_errors(char *buf, size_t len)
{
	unsigned long e;
	size_t used = strlen(buf);

	while ((e = ERR_get_error()) != 0) {
		if (used + 2 < len) {
			if (used > 0) {
				buf[used++] = ';';
				buf[used++] = ' ';
				buf[used] = '\0';
			}
			ERR_error_string_n(e, buf + used, len - used);
			used = strlen(buf);
		}
	}
}

static void
set_err(char *err, size_t errlen, const char *what, const char *path)
{
	snprintf(err, errlen, "%s%s%s: ", what, path ? " " : "", path ? path : "");
	drain_errors(err, errlen);
}

SSL_CTX *
cr_tls_ctx_new(const char *site_name, const char *cert_path,
    const char *key_path, const char *ca_path, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	X509 *own;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_method());
	if (ctx == NULL) {
		set_err(err, errlen, "cannot create TLS context", NULL);
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		set_err(err, errlen, "cannot restrict to TLS 1.3", NULL);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		set_err(err, errlen, "cannot load certificate", cert_path);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
		set_err(err, errlen, "cannot load private key", key_path);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		set_err(err, errlen, "private key does not match certificate",
		    key_path);
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(ctx, ca_path, NULL) != 1) {
		set_err(err, errlen, "cannot load CA", ca_path);
		goto fail;
	}
	own = SSL_CTX_get0_certificate(ctx);
	if (own == NULL ||
	    X509_check_host(own, site_name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
		NULL) != 1) {
		snprintf(err, errlen,
		    "certificate %s does not carry the site name \"%s\"",
		    cert_path, site_name);
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
	    NULL);
	/* Gateways talk to one another for days; no tickets, no resumption
	 * state to protect, full handshakes are cheap at this rate. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL *
cr_tls_new(SSL_CTX *ctx, const char *expect_name)
{
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL)
		return NULL;
	if (expect_name != NULL) {
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, expect_name) != 1) {
			SSL_free(ssl);
			return NULL;
		}
	}
	return ssl;
}

bool
cr_tls_peer_is(SSL *ssl, const char *name)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);

	if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return false;
	return X509_check_host(cert, name, 0,
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1;
}

const char *
cr_tls_peer_subject(SSL *ssl, char *buf, size_t len)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);

	if (cert == NULL) {
		snprintf(buf, len, "(no certificate)");
		return buf;
	}
	X509_NAME_oneline(X509_get_subject_name(cert), buf, (int)len);
	return buf;
}

