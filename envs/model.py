"""MJCF generator for the planar walker with a powered knee-ankle prosthesis.

Every number of the model comes from :class:`envs.anthropometry.WalkerParams`; the XML is generated, never edited by
hand. The kinematic tree (x forward, z up, everything rotates about the world y axis)::

    trunk (HAT; root: slide x, slide z, hinge pitch — positive leans forward)
    ├── thigh_s   hip_s   (positive = flexion, thigh forward)
    │   └── shank_s   knee_s  (positive = flexion)
    │       └── foot_s   ankle_s (positive = dorsiflexion, toe up)
    └── thigh_p   hip_p   (residual limb + socket; the hip stays the human's)
        └── pylon   knee_p  (powered)
            └── loadcell  (rigid adapter; its site measures the pylon's axial force)
                └── foot_p   ankle_p (powered)

Only the heel and toe spheres of each foot collide, with the floor only. Human joints are driven by PD servos that
MuJoCo evaluates at every physics step (targets come from the virtual human at the control rate) plus a torque motor
on each hip for the torso balance; the prosthesis knee and ankle are torque motors limited to the device's peak torque.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco

from envs.anthropometry import HEEL_BEHIND_ANKLE, TOE_AHEAD_OF_ANKLE, WalkerParams

# Actuator order in MjData.ctrl. The prosthesis motors come first so the env writes them with one slice.
ACTUATORS = (
    "knee_p_motor",
    "ankle_p_motor",
    "hip_s_servo",
    "knee_s_servo",
    "ankle_s_servo",
    "hip_p_servo",
    "hip_s_motor",
    "hip_p_motor",
)
SERVO_GAINS = {
    "hip_s_servo": (300.0, 30.0),
    "knee_s_servo": (300.0, 30.0),
    "ankle_s_servo": (300.0, 30.0),
    "hip_p_servo": (300.0, 30.0),
}


@dataclass(frozen=True)
class Geometry:
    """Derived lengths the controllers and the env need (m)."""

    thigh: float
    shank: float
    ankle_height: float
    heel: float  # heel contact centre behind the ankle axis
    toe: float  # toe contact centre in front of the ankle axis
    hat_com: float
    contact_radius: float

    @property
    def leg_length(self) -> float:
        return self.thigh + self.shank + self.ankle_height


def geometry(p: WalkerParams) -> Geometry:
    b = p.body
    foot = b.segment("foot")
    r = p.contact_radius
    return Geometry(
        thigh=b.segment("thigh").length,
        shank=b.segment("shank").length,
        ankle_height=b.ankle_height,
        heel=HEEL_BEHIND_ANKLE * foot.length,
        toe=TOE_AHEAD_OF_ANKLE * foot.length,
        hat_com=b.segment("hat").com,
        contact_radius=r,
    )


def _inertial(mass: float, com_z: float, inertia: float, com_x: float = 0.0) -> str:
    # Planar model: only the y (sagittal-axis) inertia matters; x and z are set so the triangle inequality holds.
    small = max(inertia * 0.1, 1e-6)
    return (
        f'<inertial pos="{com_x:.5f} 0 {com_z:.5f}" mass="{mass:.5f}" '
        f'diaginertia="{inertia:.6f} {inertia:.6f} {small:.6f}"/>'
    )


def _foot(
    side: str,
    p: WalkerParams,
    g: Geometry,
    mass: float,
    inertia: float,
    ankle_range: float,
    ankle_damping: float,
    ankle_armature: float,
    z: float = 0.0,
) -> str:
    r = g.contact_radius
    body_z = z
    z = -g.ankle_height + r
    com_x = (g.toe - g.heel) / 2
    return f"""
          <body name="foot_{side}" pos="0 0 {body_z:.4f}">
            <joint name="ankle_{side}" axis="0 -1 0" range="{-ankle_range:.4f} {ankle_range:.4f}"
                   damping="{ankle_damping}" armature="{ankle_armature}"/>
            {_inertial(mass, -g.ankle_height / 2, inertia, com_x)}
            <geom name="sole_{side}" type="capsule" fromto="{-g.heel:.4f} 0 {z:.4f} {g.toe:.4f} 0 {z:.4f}"
                  size="{r * 0.9:.4f}" contype="0" conaffinity="0" rgba="{_RGBA[side]}"/>
            <geom name="heel_{side}" type="sphere" pos="{-g.heel:.4f} 0 {z:.4f}" size="{r}" class="contact"/>
            <geom name="toe_{side}" type="sphere" pos="{g.toe:.4f} 0 {z:.4f}" size="{r}" class="contact"/>
            <site name="heel_{side}" pos="{-g.heel:.4f} 0 {z:.4f}" size="{r * 1.6:.4f}" rgba="0 0 0 0"/>
            <site name="toe_{side}" pos="{g.toe:.4f} 0 {z:.4f}" size="{r * 1.6:.4f}" rgba="0 0 0 0"/>
          </body>"""


_RGBA = {"s": "0.85 0.7 0.6 1", "p": "0.35 0.45 0.6 1", "trunk": "0.8 0.65 0.55 1"}


def build_mjcf(p: WalkerParams) -> str:
    """Return the MJCF XML of the walker described by `p`."""
    b, pr = p.body, p.prosthesis
    g = geometry(p)
    hat, thigh, shank, foot = (b.segment(n) for n in ("hat", "thigh", "shank", "foot"))
    # The pylon is a light tube: treat its mass as a rod of shank length for the inertia.
    pylon_inertia = pr.pylon_mass * g.shank**2 / 12.0
    foot_p_inertia = pr.foot_mass * (0.475 * foot.length) ** 2
    stand_z = g.leg_length
    hp = p.human_peak_torque
    servos = []
    for name, joint in (
        ("hip_s_servo", "hip_s"),
        ("knee_s_servo", "knee_s"),
        ("ankle_s_servo", "ankle_s"),
        ("hip_p_servo", "hip_p"),
    ):
        kp, kd = SERVO_GAINS[name]
        servos.append(
            f'<general name="{name}" joint="{joint}" gaintype="fixed" biastype="affine" gainprm="{kp}" '
            f'biasprm="0 -{kp} -{kd}" '
            f'ctrlrange="-3.2 3.2" forcerange="-{hp} {hp}"/>'
        )
    servo_xml = "\n    ".join(servos)
    return f"""<mujoco model="legloop_walker">
  <compiler angle="radian" inertiafromgeom="false" autolimits="true"/>
  <option timestep="{p.timestep}" integrator="implicitfast" gravity="0 0 -9.81"/>
  <size memory="2M"/>
  <visual><global offwidth="640" offheight="480"/><quality shadowsize="2048"/></visual>
  <default>
    <joint damping="0.05" armature="0.01"/>
    <geom contype="0" conaffinity="0" friction="{p.friction} 0.005 0.0001" solref="0.01 1" solimp="0.9 0.95 0.001"/>
    <default class="contact">
      <geom contype="1" conaffinity="0" condim="3" rgba="0.2 0.2 0.2 1"/>
    </default>
  </default>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1=".85 .85 .85" rgb2=".7 .7 .7" width="256" height="256"/>
    <material name="grid" texture="grid" texrepeat="1 1" texuniform="true"/>
  </asset>
  <worldbody>
    <light pos="0 -2 4" dir="0 0.4 -1" directional="true"/>
    <geom name="floor" type="plane" size="0 0 0.1" material="grid" contype="0" conaffinity="1" condim="3"
          friction="{p.friction} 0.005 0.0001"/>
    <body name="trunk" pos="0 0 {stand_z:.4f}">
      <camera name="track" mode="trackcom" pos="0 -3.2 0.1" xyaxes="1 0 0 0 0 1"/>
      <joint name="rootx" type="slide" axis="1 0 0" damping="0" armature="0"/>
      <joint name="rootz" type="slide" axis="0 0 1" damping="0" armature="0"/>
      <joint name="rooty" type="hinge" axis="0 1 0" damping="0" armature="0"/>
      {_inertial(hat.mass, hat.com, hat.inertia)}
      <geom name="trunk" type="capsule" fromto="0 0 0.04 0 0 {hat.length:.4f}" size="0.1" rgba="{_RGBA["trunk"]}"/>
      <geom name="head" type="sphere" pos="0 0 {hat.length + 0.12:.4f}" size="0.1" rgba="{_RGBA["trunk"]}"/>
      <site name="trunk_push" pos="0 0 {hat.com:.4f}" size="0.02"/>
      <body name="thigh_s">
        <joint name="hip_s" axis="0 -1 0" range="-1.2 2.0"/>
        {_inertial(thigh.mass, -thigh.com, thigh.inertia)}
        <geom type="capsule" fromto="0 0 0 0 0 {-g.thigh:.4f}" size="0.06" rgba="{_RGBA["s"]}"/>
        <body name="shank_s" pos="0 0 {-g.thigh:.4f}">
          <joint name="knee_s" axis="0 1 0" range="-0.05 2.6"/>
          {_inertial(shank.mass, -shank.com, shank.inertia)}
          <geom type="capsule" fromto="0 0 0 0 0 {-g.shank:.4f}" size="0.045" rgba="{_RGBA["s"]}"/>
          {_foot("s", p, g, foot.mass, foot.inertia, 0.7, 0.05, 0.01, z=-g.shank)}
        </body>
      </body>
      <body name="thigh_p">
        <joint name="hip_p" axis="0 -1 0" range="-1.2 2.0"/>
        {_inertial(thigh.mass, -thigh.com, thigh.inertia)}
        <geom type="capsule" fromto="0 0 0 0 0 {-g.thigh:.4f}" size="0.06" rgba="{_RGBA["s"]}"/>
        <site name="thigh_imu" pos="0 0.07 {-g.thigh * 0.5:.4f}" size="0.015" rgba="0.9 0.2 0.2 1"/>
        <body name="pylon" pos="0 0 {-g.thigh:.4f}">
          <joint name="knee_p" axis="0 1 0" range="{-pr.knee_hyperextension:.4f} 2.4"
                 damping="{pr.knee_damping}" armature="{pr.knee_armature}"/>
          {_inertial(pr.pylon_mass, -g.shank * 0.35, pylon_inertia)}
          <geom type="capsule" fromto="0 0 0 0 0 {-g.shank:.4f}" size="0.02" rgba="{_RGBA["p"]}"/>
          <geom type="box" pos="0 0 -0.06" size="0.045 0.04 0.07" rgba="{_RGBA["p"]}"/>
          <body name="loadcell" pos="0 0 {-g.shank:.4f}">
            {_inertial(1e-3, 0.0, 1e-6)}
            <site name="loadcell" size="0.025" rgba="0.9 0.8 0.1 1"/>
            {_foot("p", p, g, pr.foot_mass, foot_p_inertia, pr.ankle_range, pr.ankle_damping, pr.ankle_armature)}
          </body>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor name="knee_p_motor" joint="knee_p" gear="1" ctrlrange="-{pr.knee_peak_torque} {pr.knee_peak_torque}"/>
    <motor name="ankle_p_motor" joint="ankle_p" gear="1" ctrlrange="-{pr.ankle_peak_torque} {pr.ankle_peak_torque}"/>
    {servo_xml}
    <motor name="hip_s_motor" joint="hip_s" gear="1" ctrlrange="-{hp} {hp}"/>
    <motor name="hip_p_motor" joint="hip_p" gear="1" ctrlrange="-{hp} {hp}"/>
  </actuator>
  <sensor>
    <jointpos name="knee_p_pos" joint="knee_p"/>
    <jointvel name="knee_p_vel" joint="knee_p"/>
    <jointpos name="ankle_p_pos" joint="ankle_p"/>
    <jointvel name="ankle_p_vel" joint="ankle_p"/>
    <framequat name="thigh_imu_quat" objtype="site" objname="thigh_imu"/>
    <gyro name="thigh_imu_gyro" site="thigh_imu"/>
    <force name="loadcell" site="loadcell"/>
    <touch name="heel_s_touch" site="heel_s"/>
    <touch name="toe_s_touch" site="toe_s"/>
    <touch name="heel_p_touch" site="heel_p"/>
    <touch name="toe_p_touch" site="toe_p"/>
  </sensor>
</mujoco>
"""


def build_model(p: WalkerParams) -> mujoco.MjModel:
    """Compile the walker described by `p`."""
    return mujoco.MjModel.from_xml_string(build_mjcf(p))
