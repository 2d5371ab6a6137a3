/**
 * What a CLI command module looks like, and the runtime it gets: a way to call the API in-process
 * (the same handlers the UI reaches) and to print a result either as one JSON document (--json) or
 * in a readable form. Commands never print errors themselves: they throw StasisError and main.ts
 * turns it into one line on stderr and a non-zero exit.
 */
import type { Command } from 'commander';
import type { CallInput, CallName, CallOutput } from '../../shared/contract';
import type { Store } from '../engine/store/api';

export interface CliRuntime {
  /**
   * Runs an API call in this process; resolves with its validated output or throws StasisError.
   * onEvent sees the events the call emits while it runs (e.g. a search's hits, to stream them).
   */
  call<N extends CallName>(name: N, input: CallInput<N>, opts?: { onEvent?: (event: string, payload: unknown) => void }): Promise<CallOutput<N>>;
  /** Prints value as JSON with --json, else human(value) (a string, or lines). */
  print<T>(value: T, human: (value: T) => string | string[]): void;
  /** The store directory in effect (--store, STASIS_STORE, or the XDG default). */
  storeDir(): string;
  /**
   * The store the calls use, for the one command that drives the engine directly (migrate: its
   * last round holds the process frozen across the network, which no API call can return).
   */
  store(): Store;
  /** True when --json was given. */
  json(): boolean;
  /** The exit status when the command completes without an error (a check that found problems: 1). */
  setExitCode(code: number): void;
}

/** A command module: registers one (or a group of) subcommand(s) on the program. */
export interface CliCommand {
  name: string;
  register(program: Command, cli: CliRuntime): void;
}

export function defineCommand(name: string, register: CliCommand['register']): CliCommand {
  return { name, register };
}
