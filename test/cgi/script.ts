// The CGI script the real-server tests put behind each server (bundled into one file by
// servers.test.ts). '@tsgi/cgi' comes first: importing it removes HTTP_PROXY from
// process.env before the application modules below are evaluated (httpoxy).
import { runCgi } from '@tsgi/cgi';
import type { Application } from '@tsgi/core';
import { conformanceApp } from '../conformance/suite.js';
import { extras } from './extras.js';

const app: Application = (environ, startResponse) => {
  const extra = environ.HTTP_X_CGI_EXTRA;
  if (typeof extra === 'string' && extras[extra] !== undefined) {
    return extras[extra](environ, startResponse);
  }
  return conformanceApp(environ, startResponse);
};

process.exit(await runCgi(app));
