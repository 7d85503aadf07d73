/*
 * Copyright: (c) 2026, blockvault.vsphere contributors
 * GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
 *
 * The stand-in's network side: one TLS connection per request to the simulator, the peer certificate's SHA-1
 * thumbprint taken from the handshake (the certificate chain is deliberately not verified: like real VDDK, the
 * thumbprint is the trust anchor), then a plain HTTP/1.0 GET (no chunked encoding to parse).
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "standin.h"

static int tcp_connect(const char *host, unsigned port, char *errbuf, size_t errlen)
{
    struct addrinfo hints, *res = NULL, *ai;
    char portstr[16];
    int fd = -1, rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof portstr, "%u", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(errbuf, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = { .tv_sec = 60, .tv_usec = 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(errbuf, errlen, "cannot connect to %s:%u", host, port);
    return fd;
}

char *lab_basic_auth(const char *user, const char *password)
{
    size_t ulen = strlen(user ? user : ""), plen = strlen(password ? password : "");
    char *plain = malloc(ulen + plen + 2);
    char *header;
    int enc_len;

    if (!plain)
        return NULL;
    snprintf(plain, ulen + plen + 2, "%s:%s", user ? user : "", password ? password : "");
    header = malloc(32 + 4 * ((ulen + plen + 1) / 3 + 1) + 4);
    if (!header) {
        free(plain);
        return NULL;
    }
    strcpy(header, "Authorization: Basic ");
    enc_len = EVP_EncodeBlock((unsigned char *)header + strlen(header), (unsigned char *)plain, (int)(ulen + plen + 1));
    header[21 + enc_len] = '\0';
    OPENSSL_cleanse(plain, ulen + plen + 1);
    free(plain);
    return header;
}

/* A blocking call interrupted by a signal (EINTR: a profiler attaching, a timer) comes back as WANT_READ or
 * WANT_WRITE, not as a failure; like any OpenSSL client on a blocking socket, repeat it. */
static int ssl_should_retry(SSL *ssl, int rc)
{
    int why = SSL_get_error(ssl, rc);
    return why == SSL_ERROR_WANT_READ || why == SSL_ERROR_WANT_WRITE;
}

int lab_http_get(const char *host, unsigned port, const char *path_and_query, const char *auth_header,
                 struct lab_http_result *result, char *errbuf, size_t errlen)
{
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    X509 *cert = NULL;
    int fd = -1, ok = -1;
    char *request = NULL, *response = NULL;
    size_t used = 0, cap = 0;

    memset(result, 0, sizeof *result);
    result->status = -1;
    fd = tcp_connect(host, port, errbuf, errlen);
    if (fd < 0)
        goto out;
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(errbuf, errlen, "SSL_CTX_new failed");
        goto out;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    ssl = SSL_new(ctx);
    if (!ssl || !SSL_set_fd(ssl, fd)) {
        snprintf(errbuf, errlen, "SSL_new failed");
        goto out;
    }
    SSL_set_tlsext_host_name(ssl, host);
    int rc;
    while ((rc = SSL_connect(ssl)) != 1 && ssl_should_retry(ssl, rc))
        ;
    if (rc != 1) {
        unsigned long e = ERR_get_error();
        snprintf(errbuf, errlen, "TLS handshake with %s:%u failed: %s", host, port,
                 e ? ERR_error_string(e, NULL) : "connection closed");
        goto out;
    }
    cert = SSL_get1_peer_certificate(ssl);
    if (cert) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0, i;
        X509_digest(cert, EVP_sha1(), md, &mdlen);
        for (i = 0; i < mdlen && i < 20; i++)
            sprintf(result->thumbprint + 3 * i, i + 1 < mdlen ? "%02X:" : "%02X", md[i]);
    }
    if (!path_and_query) {       /* thumbprint only */
        ok = 0;
        goto out;
    }
    size_t reqlen = strlen(path_and_query) + strlen(host) + (auth_header ? strlen(auth_header) : 0) + 128;
    request = malloc(reqlen);
    if (!request)
        goto out;
    snprintf(request, reqlen, "GET %s HTTP/1.0\r\nHost: %s:%u\r\n%s%sUser-Agent: labvddk\r\nConnection: close\r\n\r\n",
             path_and_query, host, port, auth_header ? auth_header : "", auth_header ? "\r\n" : "");
    while ((rc = SSL_write(ssl, request, (int)strlen(request))) <= 0 && ssl_should_retry(ssl, rc))
        ;
    if (rc <= 0) {
        snprintf(errbuf, errlen, "sending the request to %s:%u failed", host, port);
        goto out;
    }
    for (;;) {
        if (cap - used < 4096) {
            cap = cap ? cap * 2 : 16384;
            char *bigger = realloc(response, cap + 1);
            if (!bigger)
                goto out;
            response = bigger;
        }
        int n = SSL_read(ssl, response + used, (int)(cap - used));
        if (n <= 0 && ssl_should_retry(ssl, n))
            continue;
        if (n <= 0)
            break;                /* EOF (Connection: close) or error: parse what arrived */
        used += (size_t)n;
    }
    if (!response || used < 12 || strncmp(response, "HTTP/", 5) != 0) {
        snprintf(errbuf, errlen, "no HTTP answer from %s:%u", host, port);
        goto out;
    }
    response[used] = '\0';
    result->status = atoi(strchr(response, ' ') + 1);
    char *body = strstr(response, "\r\n\r\n");
    result->body = strdup(body ? body + 4 : "");
    ok = 0;
out:
    if (request) {
        OPENSSL_cleanse(request, strlen(request));
        free(request);
    }
    free(response);
    if (cert)
        X509_free(cert);
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    if (ctx)
        SSL_CTX_free(ctx);
    if (fd >= 0)
        close(fd);
    ERR_clear_error();
    return ok;
}
