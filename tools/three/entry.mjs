// The parts of three.js the pose viewer uses (poseformer_jax/view/assets/viewer.js reads
// them from the global THREE). Add a name here when the viewer needs one more, then run
// ./build.sh.
export {
  AmbientLight, BufferAttribute, BufferGeometry, Color, CylinderGeometry, DirectionalLight,
  DynamicDrawUsage, GridHelper, InstancedMesh, Line, LineBasicMaterial, Matrix4,
  MeshLambertMaterial, PerspectiveCamera, Quaternion, REVISION, Scene, SphereGeometry,
  Vector3, WebGLRenderer,
} from 'three';
export { OrbitControls } from 'three/addons/controls/OrbitControls.js';
