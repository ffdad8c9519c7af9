/** The frontend workers' port plan and the checks on `frontendWorkers`, without starting anything. */
import { describe, expect, it } from "vitest";
import { workerFrontendId, workerRpcPorts } from "../../runtime/frontend/workers.js";
import { FlagError } from "../../runtime/shared/runtime-flags.js";
import { checkClusterPorts, checkFrontendWorkers, ManagerError } from "../../src/managers/errors.js";
import { frontendRpcPorts } from "../../src/managers/local/ports.js";

describe("frontend workers' RPC ports", () => {
  it("gives worker i rpc-port + i, and one worker the port as given (0 included)", () => {
    expect(workerRpcPorts(7000, 1)).toEqual([7000]);
    expect(workerRpcPorts(0, 1)).toEqual([0]);
    expect(workerRpcPorts(7000, 3)).toEqual([7000, 7001, 7002]);
    expect(frontendRpcPorts({ rpcPort: 7000 })).toEqual([7000]);
    expect(frontendRpcPorts({ rpcPort: 7000, frontendWorkers: 2 })).toEqual([7000, 7001]);
  });

  it("refuses an unknown base port with several workers, and a run past 65535", () => {
    expect(() => workerRpcPorts(0, 2)).toThrow(FlagError);
    expect(() => workerRpcPorts(0, 2)).toThrow(/--rpc-port must be a fixed port with --workers 2/);
    expect(workerRpcPorts(65534, 2)).toEqual([65534, 65535]);
    expect(() => workerRpcPorts(65535, 2)).toThrow(/leaves no room for 2 workers/);
  });

  it("names each worker's frontend id after the frontend's", () => {
    expect(workerFrontendId("host:1337", 0)).toBe("host:1337#w0");
    expect(workerFrontendId("host:1337", 7)).toBe("host:1337#w7");
  });
});

describe("cluster options with frontend workers", () => {
  const ports = { queryPort: 1337, managementPort: 1338, rpcPort: 7000 };

  it("accepts 1 to 8 workers whose RPC ports miss the query and management ports", () => {
    expect(() => checkClusterPorts({ ...ports, frontendWorkers: 8 })).not.toThrow();
    expect(() => checkClusterPorts({ ...ports, rpcPort: 0, frontendWorkers: 4 })).not.toThrow();
  });

  it("refuses a bad count, a run that reaches another port, and one past 65535", () => {
    for (const bad of [0, 9, 1.5, -1]) {
      expect(() => checkClusterPorts({ ...ports, frontendWorkers: bad }), String(bad)).toThrow(/frontendWorkers must be an integer from 1 to 8/);
    }
    expect(() => checkClusterPorts({ queryPort: 7001, managementPort: 1338, rpcPort: 7000, frontendWorkers: 2 })).toThrow(
      /must differ from each other and from the RPC ports 7000-7001/,
    );
    expect(() => checkClusterPorts({ queryPort: 7001, managementPort: 1338, rpcPort: 7000, frontendWorkers: 1 })).not.toThrow();
    expect(() => checkClusterPorts({ ...ports, rpcPort: 65535, frontendWorkers: 2 })).toThrow(/leaves no room for 2 frontend workers/);
  });

  it("checks the count alone where no RPC port is published (Docker, Kubernetes), returning it", () => {
    expect(checkFrontendWorkers({})).toBe(1);
    expect(checkFrontendWorkers({ frontendWorkers: 8 })).toBe(8);
    for (const bad of [0, 9, 1.5, Number.NaN]) {
      expect(() => checkFrontendWorkers({ frontendWorkers: bad }), String(bad)).toThrow(ManagerError);
      expect(() => checkFrontendWorkers({ frontendWorkers: bad }), String(bad)).toThrow(/frontendWorkers must be an integer from 1 to 8/);
    }
  });
});
