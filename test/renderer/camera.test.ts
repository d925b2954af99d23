import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CAMERA_TEXT } from '../../renderer/src/qr/camera.js';
import PairView from '../../renderer/src/views/PairView.svelte';
import { installFakePalyra, uninstallFakePalyra } from './fake-palyra.js';

const decoder = { decode: () => Promise.resolve(null) };

function setMediaDevices(value: unknown): void {
  Object.defineProperty(navigator, 'mediaDevices', { value, configurable: true, writable: true });
}

/** A MediaStream stand-in with one video track that records stop(). */
function fakeStream(deviceId = 'cam-1') {
  const track = { stop: vi.fn(), getSettings: () => ({ deviceId }), kind: 'video' };
  // A real (happy-dom) MediaStream, so <video>.srcObject accepts it, with the track the test watches.
  const stream = Object.assign(new MediaStream(), { getTracks: () => [track], getVideoTracks: () => [track] });
  return { track, stream };
}

function camera(label: string, deviceId: string): MediaDeviceInfo {
  return { kind: 'videoinput', label, deviceId, groupId: 'g', toJSON: () => ({}) };
}

beforeEach(() => {
  installFakePalyra();
  // happy-dom has no media playback.
  vi.spyOn(HTMLMediaElement.prototype, 'play').mockResolvedValue(undefined);
});

afterEach(() => {
  uninstallFakePalyra();
  setMediaDevices(undefined);
  vi.restoreAllMocks();
});

async function startCamera(): Promise<void> {
  await fireEvent.click(screen.getByTestId('camera-start'));
}

describe('camera states', () => {
  it.each([
    ['NotFoundError', 'no_camera'],
    ['NotAllowedError', 'denied'],
    ['NotReadableError', 'busy'],
  ] as const)('shows a clear state when getUserMedia rejects with %s', async (name, state) => {
    const getUserMedia = vi.fn(() => Promise.reject(new DOMException('camera problem', name)));
    setMediaDevices({ getUserMedia, enumerateDevices: () => Promise.resolve([]), addEventListener: vi.fn(), removeEventListener: vi.fn() });
    render(PairView, { props: { decoder } });

    await startCamera();

    await waitFor(() => {
      expect(screen.getByTestId('scan-status').dataset.state).toBe(state);
    });
    expect(screen.getByTestId('scan-status').textContent).toContain(CAMERA_TEXT[state].title);
    expect(screen.getByTestId('camera-hint').textContent).toContain(CAMERA_TEXT[state].hint);
    expect(getUserMedia).toHaveBeenCalledWith(expect.objectContaining({ audio: false, video: expect.anything() }));
    // The other ways to pair stay available.
    expect(screen.getByTestId('link-input')).toBeTruthy();
    expect(screen.getByTestId('pin-input')).toBeTruthy();
  });

  it('tells that the camera is unavailable when there is no mediaDevices at all', () => {
    setMediaDevices(undefined);
    render(PairView, { props: { decoder } });

    expect(screen.getByTestId('scan-status').dataset.state).toBe('unsupported');
    expect((screen.getByTestId<HTMLButtonElement>('camera-start')).disabled).toBe(true);
  });

  it('starts the preview, offers a camera picker when there are several cameras, and stops the tracks', async () => {
    const { stream, track } = fakeStream('cam-2');
    setMediaDevices({
      getUserMedia: vi.fn(() => Promise.resolve(stream)),
      enumerateDevices: () => Promise.resolve([camera('Front', 'cam-1'), camera('USB camera', 'cam-2'), { kind: 'audioinput', label: 'mic', deviceId: 'mic' }]),
      addEventListener: vi.fn(),
      removeEventListener: vi.fn(),
    });
    render(PairView, { props: { decoder } });

    await startCamera();

    await waitFor(() => {
      expect(screen.getByTestId('scan-status').dataset.state).toBe('running');
    });
    expect(screen.getByTestId('scan-status').textContent).toContain('Looking for a QR code');
    const picker = await screen.findByTestId<HTMLSelectElement>('camera-select');
    expect([...picker.options].map((o) => o.textContent)).toEqual(['Front', 'USB camera']);
    expect(picker.value).toBe('cam-2');

    await fireEvent.click(screen.getByTestId('camera-stop'));

    expect(track.stop).toHaveBeenCalled();
    expect(screen.getByTestId('scan-status').dataset.state).toBe('off');
  });

  it('reopens the chosen camera, exactly that one, when another is picked', async () => {
    const getUserMedia = vi.fn(() => Promise.resolve(fakeStream('cam-1').stream));
    setMediaDevices({
      getUserMedia,
      enumerateDevices: () => Promise.resolve([camera('Front', 'cam-1'), camera('USB camera', 'cam-2')]),
      addEventListener: vi.fn(),
      removeEventListener: vi.fn(),
    });
    render(PairView, { props: { decoder } });
    await startCamera();
    const picker = await screen.findByTestId<HTMLSelectElement>('camera-select');

    picker.value = 'cam-2';
    await fireEvent.change(picker);

    await waitFor(() => {
      expect(getUserMedia).toHaveBeenCalledTimes(2);
    });
    expect(getUserMedia).toHaveBeenLastCalledWith({ video: { deviceId: { exact: 'cam-2' } }, audio: false });
  });

  it('hides the picker when there is only one camera', async () => {
    setMediaDevices({
      getUserMedia: vi.fn(() => Promise.resolve(fakeStream().stream)),
      enumerateDevices: () => Promise.resolve([camera('Only', 'cam-1')]),
      addEventListener: vi.fn(),
      removeEventListener: vi.fn(),
    });
    render(PairView, { props: { decoder } });

    await startCamera();
    await waitFor(() => {
      expect(screen.getByTestId('scan-status').dataset.state).toBe('running');
    });

    expect(screen.queryByTestId('camera-select')).toBeNull();
  });

  it('releases the camera when the view goes away', async () => {
    const { stream, track } = fakeStream();
    setMediaDevices({ getUserMedia: () => Promise.resolve(stream), enumerateDevices: () => Promise.resolve([]), addEventListener: vi.fn(), removeEventListener: vi.fn() });
    const view = render(PairView, { props: { decoder } });
    await startCamera();
    await waitFor(() => {
      expect(screen.getByTestId('scan-status').dataset.state).toBe('running');
    });

    view.unmount();

    expect(track.stop).toHaveBeenCalled();
  });
});
