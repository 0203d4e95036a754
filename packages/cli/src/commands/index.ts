// The registry of `tsgi` subcommands. A new one is a file next to http.ts exporting a
// Command, and one entry here. Every `tsgi` run loads this list, so a command file holds
// only its description and option checks; its adapter is imported by `serve` (command.ts).
import type { Command } from '../command.js';
import { cgiCommand } from './cgi.js';
import { fastcgiCommand } from './fastcgi.js';
import { httpCommand } from './http.js';
import { scgiCommand } from './scgi.js';

/** commands: every `tsgi` subcommand, in the order `tsgi --help` lists them. */
export const commands: readonly Command[] = [httpCommand, fastcgiCommand, scgiCommand, cgiCommand];

/** findCommand: the command called `name`, or undefined. */
export function findCommand(name: string): Command | undefined {
  return commands.find((c) => c.name === name);
}
