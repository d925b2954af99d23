/** States of the camera preview. The error states each have a message and a hint (CAMERA_TEXT). */
export type CameraState = 'off' | 'starting' | 'running' | 'no_camera' | 'denied' | 'busy' | 'unsupported' | 'error';

export const CAMERA_TEXT: Readonly<Record<Exclude<CameraState, 'off' | 'starting' | 'running'>, { title: string; hint: string }>> = {
  no_camera: {
    title: 'No camera found.',
    hint: 'Connect a camera, or use one of the other ways below: paste or drop a QR image, paste the link, or type the PIN.',
  },
  denied: {
    title: 'Camera access was denied.',
    hint: 'Allow camera access for Palyra in your system or browser settings, then press Start camera again.',
  },
  busy: {
    title: 'The camera is in use by another application.',
    hint: 'Close the other application (a video call, another browser tab), then press Start camera again.',
  },
  unsupported: {
    title: 'Camera access is not available here.',
    hint: 'Use one of the other ways below: paste or drop a QR image, paste the link, or type the PIN.',
  },
  error: {
    title: 'The camera could not be started.',
    hint: 'Try another camera, or use one of the other ways below.',
  },
};

/** Maps a getUserMedia rejection (a DOMException, by name) to a camera state. */
export function cameraStateForError(error: unknown): CameraState {
  const name = typeof error === 'object' && error !== null && 'name' in error ? String(error.name) : '';
  switch (name) {
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'no_camera';
    case 'NotAllowedError':
    case 'SecurityError':
      return 'denied';
    case 'NotReadableError':
    case 'AbortError':
      return 'busy';
    default:
      return 'error';
  }
}

function mediaDevices(): MediaDevices | undefined {
  return (navigator as { mediaDevices?: MediaDevices }).mediaDevices;
}

export function cameraSupported(): boolean {
  return typeof mediaDevices()?.getUserMedia === 'function';
}

/** Opens a camera, video only; a given deviceId must be that camera exactly. */
export function openCamera(deviceId: string | null): Promise<MediaStream> {
  const devices = mediaDevices();
  if (devices === undefined) return Promise.reject(new DOMException('no mediaDevices', 'NotSupportedError'));
  const video: MediaTrackConstraints = deviceId === null ? { width: { ideal: 1280 }, height: { ideal: 720 } } : { deviceId: { exact: deviceId } };
  return devices.getUserMedia({ video, audio: false });
}

/** Video inputs; labels are empty until the person has granted camera access once. */
export async function listCameras(): Promise<MediaDeviceInfo[]> {
  const devices = mediaDevices();
  if (devices === undefined || typeof devices.enumerateDevices !== 'function') return [];
  try {
    return (await devices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
  } catch {
    return [];
  }
}

export function stopStream(stream: MediaStream | null): void {
  if (stream === null) return;
  for (const track of stream.getTracks()) track.stop();
}
