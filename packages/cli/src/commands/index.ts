// The registry of `tsgi` subcommands. A new one (fastcgi, scgi, cgi) is a file next to
// http.ts exporting a Command, and one entry here.
import type { Command } from '../command.js';
import { httpCommand } from './http.js';

/** commands: every `tsgi` subcommand, in the order `tsgi --help` lists them. */
export const commands: readonly Command[] = [httpCommand];

/** findCommand: the command called `name`, or undefined. */
export function findCommand(name: string): Command | undefined {
  return commands.find((c) => c.name === name);
}
