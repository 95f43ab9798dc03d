// calogen Geant4 engine: the data-free EM physics list and the C++ scoring.
//
// Loaded with ctypes next to the geant4_pybind module (RTLD_GLOBAL), never linked against it.
// The Python side (calogen.physics.geant4.engine) owns the run manager, the geometry and the
// particle gun; this library adds what needs C++: the EM processes (no Python bindings exist
// for them) and a stepping action that scores energy deposits without Python per step.
// Units are Geant4's: mm, MeV.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <unordered_map>
#include <utility>
#include <vector>

#include "g4_declarations.hh"

namespace {

// Every Geant4 object made here gets this many bytes (more than any of these classes needs;
// Geant4 frees them with delete, which does not depend on the size).
constexpr std::size_t kObjectBytes = 16384;

template <class T, class... Args>
T* make(Args&&... args) {
  void* memory = ::operator new(kObjectBytes);
  std::memset(memory, 0, kObjectBytes);
  return new (memory) T(std::forward<Args>(args)...);
}

// --- the data layout read per step (G4Step.hh and G4StepPoint.hh of Geant4 11.4) -----------
// G4Step: double fTotalEnergyDeposit; double fNonIonizingEnergyDeposit;
//         G4StepPoint* fpPreStepPoint; G4StepPoint* fpPostStepPoint; ...
// G4StepPoint: G4ThreeVector fPosition; 3 doubles of times; G4ThreeVector fMomentumDirection;
//         double fKineticEnergy, fVelocity; G4TouchableHandle fpTouchable (one pointer);
//         G4Material* fpMaterial; ...
constexpr std::size_t kStepEdep = 0;
constexpr std::size_t kStepPre = 16;
constexpr std::size_t kStepPost = 24;
constexpr std::size_t kPointPosition = 0;
constexpr std::size_t kPointKineticEnergy = 72;
constexpr std::size_t kPointMaterial = 96;
// ... G4double fSafety; G4ThreeVector fPolarization; G4StepStatus fStepStatus;
//     const G4VProcess* fpProcessDefinedStep; G4double fMass, fCharge; ...
constexpr std::size_t kPointMass = 168;
constexpr std::size_t kPointCharge = 176;

template <class T>
inline T read(const void* base, std::size_t offset) {
  T value;
  std::memcpy(&value, static_cast<const char*>(base) + offset, sizeof(T));
  return value;
}

struct Vec3 {
  double x, y, z;
};
inline double dot(const Vec3& a, const Vec3& b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
inline Vec3 sub(const Vec3& a, const Vec3& b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
inline Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}

// The frame of the readout: origin at the entrance point, w along the particle direction,
// u a given transverse axis, v = w x u.
struct Frame {
  Vec3 origin{0, 0, 0}, u{1, 0, 0}, v{0, 1, 0}, w{0, 0, 1};
};

// --- scorers ---------------------------------------------------------------------------------
class Scorer {
 public:
  virtual ~Scorer() = default;
  virtual void begin_event() = 0;
  // A deposit of `edep` MeV at local coordinates (a, b, depth) mm.
  virtual void add(double a, double b, double depth, double edep) = 0;
  // Whether the scorer wants charged steps in the sensitive material (add_charged).
  virtual bool wants_charged_steps() const { return false; }
  // A charged step in the sensitive material: middle at (a, b, depth) mm, length `length` mm,
  // cosine `cos_axis` between the step and the depth axis, speed beta (the mean of its pre- and
  // post-step values), charge in units of e.
  virtual void add_charged(double, double, double, double, double, double, double) {}
  // End of the event (after the last step).
  virtual void end_event() {}
};

// Output rows: scorers that fill a caller's row of doubles per event.
class RowScorer : public Scorer {
 public:
  void set_output(double* row) { row_ = row; }
  virtual int n_cells() const = 0;
  void begin_event() override {
    if (row_ != nullptr)
      std::memset(row_, 0, sizeof(double) * static_cast<std::size_t>(n_cells()));
  }

 protected:
  double* row_ = nullptr;
};

// The CaloChallenge cylindrical mesh: n_layers of `layer_mm` in depth, n_r rings of `r_mm`,
// n_alpha angle bins over (-pi, pi]; index = layer * n_alpha * n_r + alpha_bin * n_r + r_bin.
class VoxelScorer : public RowScorer {
 public:
  VoxelScorer(int n_layers, double layer_mm, int n_r, double r_mm, int n_alpha)
      : n_layers_(n_layers), layer_mm_(layer_mm), n_r_(n_r), r_mm_(r_mm), n_alpha_(n_alpha) {}
  int n_cells() const override { return n_voxels(); }
  void add(double a, double b, double depth, double edep) override {
    if (row_ == nullptr || depth < 0) return;
    const int layer = static_cast<int>(depth / layer_mm_);
    if (layer >= n_layers_) return;
    const int ring = static_cast<int>(std::sqrt(a * a + b * b) / r_mm_);
    if (ring >= n_r_) return;
    const double alpha = std::atan2(b, a);
    int sector = static_cast<int>((alpha + M_PI) / (2 * M_PI) * n_alpha_);
    if (sector < 0) sector = 0;
    if (sector >= n_alpha_) sector = n_alpha_ - 1;
    row_[(layer * n_alpha_ + sector) * n_r_ + ring] += edep;
  }
  int n_voxels() const { return n_layers_ * n_alpha_ * n_r_; }

 private:
  int n_layers_;
  double layer_mm_;
  int n_r_;
  double r_mm_;
  int n_alpha_;
};

// Cherenkov photons counted per fibre of a grid of fibres along the depth axis: n_rows x n_cols
// fibres at `pitch_mm`, centred on the axis; row 0 at the top (largest b), column 0 at the left
// (smallest a); cell index = row * n_cols + col. A charged step of length L with speed beta and
// charge z adds a mean of
//   yield_per_mm * z^2 * L * sin^2(theta_c) * trapped(theta_c, psi)
// photons to its fibre (Frank-Tamm: yield_per_mm = 2 pi alpha (1/lambda_1 - 1/lambda_2) times
// the detection efficiency; cos(theta_c) = 1 / (n beta), nothing below beta = 1/n), where
// trapped() is the fraction of the Cherenkov cone (half-angle theta_c around the step, which
// makes an angle psi with the fibre axis) that travels downstream within the fibre's
// acceptance half-angle theta_t (sin(theta_t) = NA / n; meridional rays). At the end of the
// event each fibre's count is drawn from a Poisson law of its mean. Only steps that deposit
// energy reach the scorer (every charged step does, through ionisation).
class FibreScorer : public RowScorer {
 public:
  FibreScorer(int n_rows, int n_cols, double pitch_mm, double refractive_index,
              double numerical_aperture, double yield_per_mm)
      : n_rows_(n_rows), n_cols_(n_cols), pitch_mm_(pitch_mm), n_(refractive_index),
        yield_per_mm_(yield_per_mm) {
    const double sin_t = numerical_aperture / refractive_index;
    cos_trap_ = std::sqrt(1.0 - sin_t * sin_t);
  }
  int n_cells() const override { return n_rows_ * n_cols_; }
  bool wants_charged_steps() const override { return true; }
  void add(double, double, double, double) override {}
  void add_charged(double a, double b, double, double length, double cos_axis, double beta,
                   double charge) override {
    if (row_ == nullptr) return;
    const double cos_c = 1.0 / (n_ * beta);
    if (!(cos_c < 1.0)) return;
    const double trapped = trapped_fraction(cos_c, cos_axis);
    if (!(trapped > 0)) return;
    const int col = static_cast<int>(std::floor(a / pitch_mm_ + 0.5 * n_cols_));
    const int row = static_cast<int>(std::floor(0.5 * n_rows_ - b / pitch_mm_));
    if (row < 0 || row >= n_rows_ || col < 0 || col >= n_cols_) return;
    row_[row * n_cols_ + col] +=
        yield_per_mm_ * charge * charge * length * (1.0 - cos_c * cos_c) * trapped;
  }
  void end_event() override {
    if (row_ == nullptr) return;
    for (int i = 0; i < n_cells(); ++i)
      row_[i] = row_[i] > 0 ? static_cast<double>(CLHEP::RandPoisson::shoot(row_[i])) : 0.0;
  }
  // Fraction of the cone's azimuth with a photon direction k such that k . axis > cos_trap_.
  double trapped_fraction(double cos_c, double cos_psi) const {
    const double sin_c = std::sqrt(std::max(0.0, 1.0 - cos_c * cos_c));
    const double sin_psi = std::sqrt(std::max(0.0, 1.0 - cos_psi * cos_psi));
    const double denominator = sin_c * sin_psi;
    const double numerator = cos_trap_ - cos_c * cos_psi;
    if (denominator < 1e-12) return numerator < 0 ? 1.0 : 0.0;
    const double x = numerator / denominator;
    if (x >= 1.0) return 0.0;
    if (x <= -1.0) return 1.0;
    return std::acos(x) / M_PI;
  }

 private:
  int n_rows_;
  int n_cols_;
  double pitch_mm_;
  double n_;
  double yield_per_mm_;
  double cos_trap_;
};

// Deposits clustered onto a transverse grid (`cell_mm` squares, one corner at the axis) per
// sensitive layer (depth edges `layer_edges`): one point per occupied cluster cell, at the
// energy-weighted mean (a, b) of its deposits and the layer's mid-depth.
class PointScorer : public Scorer {
 public:
  PointScorer(const double* layer_edges, int n_layers, double cell_mm)
      : edges_(layer_edges, layer_edges + n_layers + 1), cell_mm_(cell_mm) {}
  void begin_event() override {
    cells_.clear();
    order_.clear();
  }
  void add(double a, double b, double depth, double edep) override {
    if (depth < edges_.front() || depth >= edges_.back()) return;
    int lo = 0, hi = static_cast<int>(edges_.size()) - 1;
    while (hi - lo > 1) {
      const int mid = (lo + hi) / 2;
      if (depth >= edges_[mid]) lo = mid; else hi = mid;
    }
    const auto ia = static_cast<std::int64_t>(std::floor(a / cell_mm_)) + (1 << 20);
    const auto ib = static_cast<std::int64_t>(std::floor(b / cell_mm_)) + (1 << 20);
    const std::int64_t key = (static_cast<std::int64_t>(lo) << 42) | (ib << 21) | ia;
    auto found = cells_.find(key);
    if (found == cells_.end()) {
      found = cells_.emplace(key, Cluster{}).first;
      found->second.layer = lo;
      order_.push_back(key);
    }
    Cluster& c = found->second;
    c.e += edep;
    c.ea += edep * a;
    c.eb += edep * b;
  }
  int n_points() const { return static_cast<int>(order_.size()); }
  // Points (a, b, depth, E) in first-deposit order.
  void copy(double* out) const {
    for (std::size_t i = 0; i < order_.size(); ++i) {
      const Cluster& c = cells_.at(order_[i]);
      out[4 * i + 0] = c.e > 0 ? c.ea / c.e : 0.0;
      out[4 * i + 1] = c.e > 0 ? c.eb / c.e : 0.0;
      out[4 * i + 2] = 0.5 * (edges_[c.layer] + edges_[c.layer + 1]);
      out[4 * i + 3] = c.e;
    }
  }

 private:
  struct Cluster {
    int layer = 0;
    double e = 0, ea = 0, eb = 0;
  };
  std::vector<double> edges_;
  double cell_mm_;
  std::unordered_map<std::int64_t, Cluster> cells_;
  std::vector<std::int64_t> order_;
};

// --- the stepping action -----------------------------------------------------------------------
class ScoringAction : public G4UserSteppingAction {
 public:
  void UserSteppingAction(const G4Step* step) override {
    const double edep = read<double>(step, kStepEdep);
    if (!(edep > 0)) return;
    totals_[0] += edep;
    const void* pre = read<const void*>(step, kStepPre);
    const void* material = read<const void*>(pre, kPointMaterial);
    if (material != sensitive_ || scorer_ == nullptr) return;
    totals_[1] += edep;
    const void* post = read<const void*>(step, kStepPost);
    const Vec3 p0 = read<Vec3>(pre, kPointPosition);
    const Vec3 p1 = read<Vec3>(post, kPointPosition);
    const Vec3 mid{0.5 * (p0.x + p1.x), 0.5 * (p0.y + p1.y), 0.5 * (p0.z + p1.z)};
    const Vec3 d = sub(mid, frame_.origin);
    const double a = dot(d, frame_.u), b = dot(d, frame_.v), depth = dot(d, frame_.w);
    scorer_->add(a, b, depth, edep);
    if (!scorer_->wants_charged_steps()) return;
    const double charge = read<double>(pre, kPointCharge);
    if (charge == 0.0) return;
    const Vec3 chord = sub(p1, p0);
    const double length = std::sqrt(dot(chord, chord));
    if (!(length > 0)) return;
    const double mass = read<double>(pre, kPointMass);
    const double beta = 0.5 * (speed(read<double>(pre, kPointKineticEnergy), mass) +
                               speed(read<double>(post, kPointKineticEnergy), mass));
    scorer_->add_charged(a, b, depth, length, dot(chord, frame_.w) / length, beta, charge);
  }
  // beta of a particle of kinetic energy t and mass m (MeV).
  static double speed(double t, double m) {
    return t > 0 ? std::sqrt(t * (t + 2 * m)) / (t + m) : 0.0;
  }
  void end_event() {
    if (scorer_ != nullptr) scorer_->end_event();
  }
  void begin_event() {
    totals_[0] = totals_[1] = 0;
    if (scorer_ != nullptr) scorer_->begin_event();
  }
  void set_scorer(Scorer* scorer) {
    delete scorer_;
    scorer_ = scorer;
  }
  Scorer* scorer() const { return scorer_; }
  Frame frame_;
  const void* sensitive_ = nullptr;
  double totals_[2] = {0, 0};  // all deposits, deposits in the sensitive material (MeV)

 private:
  Scorer* scorer_ = nullptr;
};

ScoringAction* g_action = nullptr;

void register_process(G4VProcess* process, G4ParticleDefinition* particle) {
  G4PhysicsListHelper::GetPhysicsListHelper()->RegisterProcess(process, particle);
}

void construct_electron_like(G4ParticleDefinition* particle, bool positron) {
  auto* msc = make<G4eMultipleScattering>(G4String("msc"));
  msc->SetEmModel(make<G4UrbanMscModel>(G4String("UrbanMsc")), 0);
  register_process(msc, particle);
  register_process(make<G4eIonisation>(G4String("eIoni")), particle);
  // Relativistic bremsstrahlung in both model slots: the default Seltzer-Berger model of the
  // low-energy slot reads G4LEDATA.
  auto* brem = make<G4eBremsstrahlung>(G4String("eBrem"));
  brem->SetEmModel(make<G4eBremsstrahlungRelModel>(nullptr, G4String("eBremLPM")), 0);
  brem->SetEmModel(make<G4eBremsstrahlungRelModel>(nullptr, G4String("eBremLPM")), 1);
  register_process(brem, particle);
  if (positron) register_process(make<G4eplusAnnihilation>(G4String("annihil")), particle);
}

void construct_muon(G4ParticleDefinition* particle) {
  register_process(make<G4MuMultipleScattering>(G4String("muMsc")), particle);
  register_process(make<G4MuIonisation>(G4String("muIoni")), particle);
  register_process(make<G4MuBremsstrahlung>(G4String("muBrems")), particle);
  register_process(make<G4MuPairProduction>(G4String("muPairProd")), particle);
}

}  // namespace

extern "C" {

// 1 when G4Step's layout is the one the stepping action reads (pre/post points allocated by
// the constructor at the expected offsets, zero deposit), else 0.
int cg4_layout_check() {
  G4Step* step = make<G4Step>();
  const double edep = read<double>(step, kStepEdep);
  const void* pre = read<const void*>(step, kStepPre);
  const void* post = read<const void*>(step, kStepPost);
  int ok = edep == 0.0 && pre != nullptr && post != nullptr && pre != post;
  if (ok) {
    const Vec3 position = read<Vec3>(pre, kPointPosition);
    ok = position.x == 0 && position.y == 0 && position.z == 0 &&
         read<const void*>(pre, kPointMaterial) == nullptr;
  }
  step->~G4Step();
  ::operator delete(static_cast<void*>(step));
  return ok;
}

// EM parameters of the data-free list: no general gamma process, no fluorescence.
void cg4_configure_em() {
  G4EmParameters* parameters = G4EmParameters::Instance();
  parameters->SetGeneralProcessActive(false);
  parameters->SetFluo(false);
  parameters->SetVerbose(0);
  parameters->SetWorkerVerbose(0);
}

void cg4_construct_particles() { G4EmBuilder::ConstructMinimalEmSet(); }

// The `em` physics list's processes (called from ConstructProcess, after transportation).
void cg4_construct_em() {
  cg4_configure_em();
  G4ParticleDefinition* gamma = G4Gamma::Gamma();
  auto* phot = make<G4PhotoElectricEffect>(G4String("phot"), fElectromagnetic);
  phot->SetEmModel(make<G4PEEffectFluoModel>(G4String("PhotoElectric")), 0);
  register_process(phot, gamma);
  auto* compt = make<G4ComptonScattering>(G4String("compt"), fElectromagnetic);
  compt->SetEmModel(make<G4KleinNishinaCompton>(nullptr, G4String("Klein-Nishina")), 0);
  register_process(compt, gamma);
  auto* conv = make<G4GammaConversion>(G4String("conv"), fElectromagnetic);
  conv->SetEmModel(make<G4BetheHeitler5DModel>(nullptr, G4String("BetheHeitler5D")), 0);
  register_process(conv, gamma);
  construct_electron_like(G4Electron::Electron(), false);
  construct_electron_like(G4Positron::Positron(), true);
  construct_muon(G4MuonPlus::MuonPlus());
  construct_muon(G4MuonMinus::MuonMinus());
}

// Hadronic verbosity off (before any hadronic object is made).
void cg4_configure_hadronic() { G4HadronicParameters::Instance()->SetVerboseLevel(0); }

// The hadronic part of `em+hadronic` (called from ConstructProcess, after cg4_construct_em and
// after G4DecayPhysics has made every particle):
// - EM of charged hadrons and ions: multiple scattering and ionisation (Urban msc, Bragg and
//   Bethe-Bloch models) for pi, K, p and their antiparticles, light ions, GenericIon and the
//   heavier charged hadrons;
// - inelastic: FTFP above 3 GeV and Bertini below 12 GeV for pi+-, p, n, kaons and hyperons,
//   FTFP alone for anti-nucleons, on Glauber-Gribov cross sections, replaced by the
//   Barashenkov-Glauber-Gribov ones for pi+- (G4BGGPionInelasticXS) and nucleons
//   (G4BGGNucleonInelasticXS, also for the neutron: G4NeutronInelasticXS reads G4PARTICLEXS);
// - elastic: G4HadronElastic on Glauber-Gribov cross sections, BGG ones for pi+- and nucleons
//   (G4NeutronElasticXS and the CHIPS nucleon model tables are data sets, not used).
// No neutron capture (its cross section reads G4PARTICLEXS), no ion inelastic.
void cg4_construct_hadronic() {
  cg4_configure_hadronic();
  G4ParticleDefinition* pip = G4PionPlus::PionPlus();
  G4ParticleDefinition* pim = G4PionMinus::PionMinus();
  G4ParticleDefinition* proton = G4Proton::Proton();
  G4ParticleDefinition* neutron = G4Neutron::Neutron();
  G4EmBuilder::ConstructLightHadrons(pip, pim, false, false, false);
  G4EmBuilder::ConstructLightHadrons(G4KaonPlus::KaonPlus(), G4KaonMinus::KaonMinus(), false,
                                     false, false);
  G4EmBuilder::ConstructLightHadrons(proton, G4AntiProton::AntiProton(), false, true, false);
  auto* ion_msc = make<G4hMultipleScattering>(G4String("ionmsc"));
  G4EmBuilder::ConstructIonEmPhysics(ion_msc, nullptr);
  register_process(make<G4hMultipleScattering>(G4String("ionmsc")), G4GenericIon::GenericIon());
  register_process(make<G4ionIonisation>(G4String("ionIoni")), G4GenericIon::GenericIon());
  G4EmBuilder::ConstructBasicEmPhysics(ion_msc, G4HadParticles::GetHeavyChargedParticles());

  const std::vector<int> pions_nucleons = {211, -211, 2212, 2112};
  G4HadronicBuilder::BuildFTFP_BERT(pions_nucleons, true, G4String("Glauber-Gribov"));
  G4HadronicBuilder::BuildKaonsFTFP_BERT();
  G4HadronicBuilder::BuildHyperonsFTFP_BERT();
  G4HadronicBuilder::BuildFTFP_BERT({-2212, -2112}, false, G4String("AntiAGlauber"));
  // A data set added last takes over from the ones before it.
  G4HadProcesses::AddInelasticCrossSection(pip, make<G4BGGPionInelasticXS>(pip));
  G4HadProcesses::AddInelasticCrossSection(pim, make<G4BGGPionInelasticXS>(pim));
  G4HadProcesses::AddInelasticCrossSection(proton, make<G4BGGNucleonInelasticXS>(proton));
  G4HadProcesses::AddInelasticCrossSection(neutron, make<G4BGGNucleonInelasticXS>(neutron));

  G4HadronicBuilder::BuildElastic({211, -211, 321, -321, 130, 310, 2212, 2112, -2212, -2112});
  G4HadProcesses::AddElasticCrossSection(pip, make<G4BGGPionElasticXS>(pip));
  G4HadProcesses::AddElasticCrossSection(pim, make<G4BGGPionElasticXS>(pim));
  G4HadProcesses::AddElasticCrossSection(proton, make<G4BGGNucleonElasticXS>(proton));
  G4HadProcesses::AddElasticCrossSection(neutron, make<G4BGGNucleonElasticXS>(neutron));
}

// Install the stepping action on the run manager; deposits in `material` are scored.
// Returns 0 on success, 1 without a run manager, 2 for an unknown material.
int cg4_install_scoring(const char* material) {
  G4RunManager* manager = G4RunManager::GetRunManager();
  if (manager == nullptr) return 1;
  G4Material* sensitive = G4Material::GetMaterial(G4String(material), false);
  if (sensitive == nullptr) return 2;
  if (g_action == nullptr) {
    g_action = new ScoringAction();
    manager->G4RunManager::SetUserAction(g_action);
  }
  g_action->sensitive_ = sensitive;
  return 0;
}

// The readout frame: entrance point, direction w and transverse axis u (unit vectors).
void cg4_set_frame(const double* origin, const double* w, const double* u) {
  if (g_action == nullptr) return;
  Frame& f = g_action->frame_;
  f.origin = {origin[0], origin[1], origin[2]};
  f.w = {w[0], w[1], w[2]};
  f.u = {u[0], u[1], u[2]};
  f.v = cross(f.w, f.u);
}

void cg4_set_voxel_scorer(int n_layers, double layer_mm, int n_r, double r_mm, int n_alpha) {
  if (g_action != nullptr)
    g_action->set_scorer(new VoxelScorer(n_layers, layer_mm, n_r, r_mm, n_alpha));
}

// Cherenkov counting per fibre (see FibreScorer); lengths in mm.
void cg4_set_fibre_scorer(int n_rows, int n_cols, double pitch_mm, double refractive_index,
                          double numerical_aperture, double yield_per_mm) {
  if (g_action != nullptr)
    g_action->set_scorer(new FibreScorer(n_rows, n_cols, pitch_mm, refractive_index,
                                         numerical_aperture, yield_per_mm));
}

void cg4_set_point_scorer(const double* layer_edges, int n_layers, double cell_mm) {
  if (g_action != nullptr) g_action->set_scorer(new PointScorer(layer_edges, n_layers, cell_mm));
}

// Start an event: reseed the engine with `seeds` (4 values, MixMax) and reset the scorer;
// voxel deposits or fibre counts of the event go to `row` (n_cells doubles, zeroed here).
void cg4_begin_event(const long* seeds, double* row) {
  CLHEP::HepRandom::setTheSeeds(seeds, 4);
  if (g_action == nullptr) return;
  if (auto* rows = dynamic_cast<RowScorer*>(g_action->scorer())) rows->set_output(row);
  g_action->begin_event();
}

// End an event (after its last step): fibre counts become Poisson draws of their means, with
// the event's random engine.
void cg4_end_event() {
  if (g_action != nullptr) g_action->end_event();
}

// Deposits of the current event (MeV): [all materials, the sensitive material].
void cg4_event_totals(double* out) {
  out[0] = g_action != nullptr ? g_action->totals_[0] : 0.0;
  out[1] = g_action != nullptr ? g_action->totals_[1] : 0.0;
}

int cg4_point_count() {
  auto* points = g_action != nullptr ? dynamic_cast<PointScorer*>(g_action->scorer()) : nullptr;
  return points != nullptr ? points->n_points() : 0;
}

void cg4_point_copy(double* out) {
  auto* points = g_action != nullptr ? dynamic_cast<PointScorer*>(g_action->scorer()) : nullptr;
  if (points != nullptr) points->copy(out);
}

}  // extern "C"
