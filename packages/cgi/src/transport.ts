import { Buffer } from 'node:buffer';
import { isLocalRedirect, type ResponseHead, serializeCgiHead, type Transport } from '@tsgi/core';
import type { Output } from './stdio.js';

/** CgiTransportOptions: how the CGI transport writes heads. */
export interface CgiTransportOptions {
  /**
   * Apply the local-redirect rule (RFC 3875 section 6.2.2, mod_wsgi's reading of it): a 200
   * with nothing but an absolute-path Location and no body goes out as that one Location
   * line, so the server serves the path itself. Default true.
   */
  localRedirect?: boolean;
}

/** Chunks below this size are copied behind the head so that both leave in one write. */
const COALESCE_LIMIT = 64 * 1024;

/**
 * CgiTransport: the core's Transport over stdout, in RFC 3875 section 6 form (a
 * `Status:` line, the headers, a blank line, the body; the end of the response is the
 * end of the output). Heads are serialized by the core's one CGI serializer.
 *
 * The head waits for the first body chunk (or the end, or the next turn of the event
 * loop, for an app that commits its head with `write('')` and then takes its time), so a
 * small response is one `write(2)`: one wake-up of the server instead of two.
 *
 * A head that qualifies as a local redirect is held back until the end of the response:
 * whether it is one depends on the body being empty, which is only known then. Any body
 * byte releases it as an ordinary head with an explicit Status.
 */
export class CgiTransport implements Transport {
  private head: ResponseHead | undefined;
  private redirectCandidate = false;
  private timer: ReturnType<typeof setImmediate> | undefined;
  private readonly localRedirect: boolean;
  /** CgiTransport.localRedirectSent: the response went out as a bare Location line. */
  localRedirectSent = false;
  /** CgiTransport.aborted: the reason the core gave up on the response, if it did. */
  aborted: Error | undefined;

  constructor(
    private readonly out: Output,
    options: CgiTransportOptions = {},
  ) {
    this.localRedirect = options.localRedirect ?? true;
  }

  sendHead(head: ResponseHead): void {
    this.head = head;
    this.redirectCandidate = this.localRedirect && isLocalRedirect(head, 0);
    if (!this.redirectCandidate) {
      this.timer = setImmediate(() => {
        this.timer = undefined;
        void this.releaseHead()?.catch(() => undefined);
      });
    }
  }

  /** Writes a waiting head on its own (as an ordinary head, with its Status). */
  private releaseHead(): Promise<void> | undefined {
    const head = this.takeHead();
    return head === undefined ? undefined : this.out.write(serializeCgiHead(head));
  }

  private takeHead(): ResponseHead | undefined {
    const head = this.head;
    this.head = undefined;
    if (this.timer !== undefined) {
      clearImmediate(this.timer);
      this.timer = undefined;
    }
    return head;
  }

  write(chunk: Uint8Array): void | Promise<void> {
    const head = this.takeHead();
    if (head === undefined) return this.out.write(chunk);
    const bytes = serializeCgiHead(head);
    if (chunk.length < COALESCE_LIMIT) return this.out.write(Buffer.concat([bytes, chunk]));
    const p = this.out.write(bytes);
    return p === undefined ? this.out.write(chunk) : p.then(() => this.out.write(chunk));
  }

  end(): Promise<void> {
    const head = this.takeHead();
    if (head !== undefined) {
      const redirect = this.redirectCandidate;
      this.localRedirectSent = redirect;
      void this.out
        .write(serializeCgiHead(head, { localRedirect: redirect }))
        ?.catch(() => undefined);
    }
    // Complete means handed to the kernel: a failed flush makes runApp abort instead.
    return this.out.flush();
  }

  abort(reason: Error): void {
    this.aborted = reason;
    // Nothing on the wire can mark a CGI response as broken once its head is out: the
    // script ends its output, exits non-zero, and the error is in the server's log. A head
    // still waiting here (nothing of the response written yet) is dropped: with no head
    // at all the server answers 500/502 itself, instead of passing an empty body off as
    // the complete response.
    this.takeHead();
  }
}
