/**
 * Closed-loop load for end-to-end tests: each client asks again as soon as it has an answer, with a
 * distinct input every time (the prediction cache would answer repeats without the model). Every
 * answer that is not the model's (an HTTP error, a default output, a network failure) is kept in
 * `failures` for the test to assert on.
 */
export interface ClosedLoopLoad {
  /** Model outputs, in the order they arrived, with when each arrived (ms since the epoch). */
  readonly answered: { output: unknown; at: number }[];
  readonly failures: string[];
  /** Stops asking and waits for every client's last query. */
  stop(): Promise<void>;
}

export function closedLoopLoad(url: string, clients: number, input: (n: number) => unknown): ClosedLoopLoad {
  const answered: { output: unknown; at: number }[] = [];
  const failures: string[] = [];
  let loading = true;
  let sent = 0;
  const client = async () => {
    while (loading) {
      try {
        const res = await fetch(url, { method: "POST", body: JSON.stringify({ input: input(sent++) }) });
        const body = (await res.json()) as { default?: boolean; output?: unknown };
        if (res.status !== 200 || body.default !== false) failures.push(`${res.status} ${JSON.stringify(body)}`);
        else answered.push({ output: body.output, at: Date.now() });
      } catch (err) {
        failures.push(String(err));
      }
    }
  };
  const running = Array.from({ length: clients }, client);
  return {
    answered, failures,
    stop: async () => {
      loading = false;
      await Promise.all(running);
    },
  };
}
