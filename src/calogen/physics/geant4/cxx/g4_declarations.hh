// calogen: the few Geant4 11.4 declarations the engine calls, written for this project.
//
// The geant4-pybind wheel ships no headers. Only what the engine calls is declared here, with
// the signatures (and therefore the mangled names) the wheel exports; objects are made by the
// exported constructors. Classes the engine only passes around are left incomplete, bases are
// empty so that pointer conversions stay at offset 0 (single inheritance in Geant4). Calls are
// non-virtual (they bind to the exported symbol directly). The data layouts the engine reads
// (G4Step, G4StepPoint) are checked at run time by cg4_layout_check().
#pragma once

#include <string>
#include <vector>

// --- global ------------------------------------------------------------------------------
class G4String : public std::string {
 public:
  G4String(const char* text) : std::string(text) {}
};

// G4ProcessType (G4ProcessType.hh): only the value used here.
enum G4ProcessType { fElectromagnetic = 2 };

namespace CLHEP {
class HepRandom {
 public:
  static void setTheSeeds(const long* seeds, int aux);
};
class RandPoisson {
 public:
  static long shoot(double mean);
};
}  // namespace CLHEP

// --- particles and materials ---------------------------------------------------------------
class G4ParticleDefinition;
class G4Material {
 public:
  static G4Material* GetMaterial(const G4String& name, bool warning);
};

class G4Gamma { public: static G4ParticleDefinition* Gamma(); };
class G4Electron { public: static G4ParticleDefinition* Electron(); };
class G4Positron { public: static G4ParticleDefinition* Positron(); };
class G4MuonPlus { public: static G4ParticleDefinition* MuonPlus(); };
class G4MuonMinus { public: static G4ParticleDefinition* MuonMinus(); };
class G4PionPlus { public: static G4ParticleDefinition* PionPlus(); };
class G4PionMinus { public: static G4ParticleDefinition* PionMinus(); };
class G4KaonPlus { public: static G4ParticleDefinition* KaonPlus(); };
class G4KaonMinus { public: static G4ParticleDefinition* KaonMinus(); };
class G4Proton { public: static G4ParticleDefinition* Proton(); };
class G4AntiProton { public: static G4ParticleDefinition* AntiProton(); };
class G4Neutron { public: static G4ParticleDefinition* Neutron(); };
class G4GenericIon { public: static G4ParticleDefinition* GenericIon(); };

class G4NuclearStopping;
class G4hMultipleScattering;

class G4EmBuilder {
 public:
  static void ConstructMinimalEmSet();
  static void ConstructLightHadrons(G4ParticleDefinition* particle, G4ParticleDefinition* anti,
                                    bool isHEP, bool isProton, bool isWVI);
  static void ConstructIonEmPhysics(G4hMultipleScattering* msc, G4NuclearStopping* stopping);
  static void ConstructBasicEmPhysics(G4hMultipleScattering* msc, const std::vector<int>& pdg);
};

// --- processes and models --------------------------------------------------------------------
class G4VProcess {};
class G4VEmModel {};
class G4VMscModel : public G4VEmModel {};

class G4VEmProcess : public G4VProcess {
 public:
  void SetEmModel(G4VEmModel* model, int index);
};
class G4VEnergyLossProcess : public G4VProcess {
 public:
  void SetEmModel(G4VEmModel* model, int index);
};
class G4VMultipleScattering : public G4VProcess {
 public:
  void SetEmModel(G4VMscModel* model, int index);
};

class G4PhotoElectricEffect : public G4VEmProcess {
 public:
  G4PhotoElectricEffect(const G4String& name, G4ProcessType type);
};
class G4ComptonScattering : public G4VEmProcess {
 public:
  G4ComptonScattering(const G4String& name, G4ProcessType type);
};
class G4GammaConversion : public G4VEmProcess {
 public:
  G4GammaConversion(const G4String& name, G4ProcessType type);
};
class G4eplusAnnihilation : public G4VEmProcess {
 public:
  explicit G4eplusAnnihilation(const G4String& name);
};

class G4eIonisation : public G4VEnergyLossProcess {
 public:
  explicit G4eIonisation(const G4String& name);
};
class G4eBremsstrahlung : public G4VEnergyLossProcess {
 public:
  explicit G4eBremsstrahlung(const G4String& name);
};
class G4MuIonisation : public G4VEnergyLossProcess {
 public:
  explicit G4MuIonisation(const G4String& name);
};
class G4MuBremsstrahlung : public G4VEnergyLossProcess {
 public:
  explicit G4MuBremsstrahlung(const G4String& name);
};
class G4MuPairProduction : public G4VEnergyLossProcess {
 public:
  explicit G4MuPairProduction(const G4String& name);
};

class G4hMultipleScattering : public G4VMultipleScattering {
 public:
  explicit G4hMultipleScattering(const G4String& name);
};
class G4ionIonisation : public G4VEnergyLossProcess {
 public:
  explicit G4ionIonisation(const G4String& name);
};

class G4eMultipleScattering : public G4VMultipleScattering {
 public:
  explicit G4eMultipleScattering(const G4String& name);
};
class G4MuMultipleScattering : public G4VMultipleScattering {
 public:
  explicit G4MuMultipleScattering(const G4String& name);
};

class G4PEEffectFluoModel : public G4VEmModel {
 public:
  explicit G4PEEffectFluoModel(const G4String& name);
};
class G4KleinNishinaCompton : public G4VEmModel {
 public:
  G4KleinNishinaCompton(const G4ParticleDefinition* particle, const G4String& name);
};
class G4BetheHeitler5DModel : public G4VEmModel {
 public:
  G4BetheHeitler5DModel(const G4ParticleDefinition* particle, const G4String& name);
};
class G4eBremsstrahlungRelModel : public G4VEmModel {
 public:
  G4eBremsstrahlungRelModel(const G4ParticleDefinition* particle, const G4String& name);
};
class G4UrbanMscModel : public G4VMscModel {
 public:
  explicit G4UrbanMscModel(const G4String& name);
};

class G4EmParameters {
 public:
  static G4EmParameters* Instance();
  void SetGeneralProcessActive(bool value);
  void SetFluo(bool value);
  void SetVerbose(int value);
  void SetWorkerVerbose(int value);
};

class G4PhysicsListHelper {
 public:
  static G4PhysicsListHelper* GetPhysicsListHelper();
  bool RegisterProcess(G4VProcess* process, G4ParticleDefinition* particle);
};

// --- hadronic physics -----------------------------------------------------------------------
class G4VCrossSectionDataSet {};
class G4HadronicProcess;

class G4BGGPionInelasticXS : public G4VCrossSectionDataSet {
 public:
  explicit G4BGGPionInelasticXS(const G4ParticleDefinition* particle);
};
class G4BGGNucleonInelasticXS : public G4VCrossSectionDataSet {
 public:
  explicit G4BGGNucleonInelasticXS(const G4ParticleDefinition* particle);
};
class G4BGGPionElasticXS : public G4VCrossSectionDataSet {
 public:
  explicit G4BGGPionElasticXS(const G4ParticleDefinition* particle);
};
class G4BGGNucleonElasticXS : public G4VCrossSectionDataSet {
 public:
  explicit G4BGGNucleonElasticXS(const G4ParticleDefinition* particle);
};

// Static helpers of Geant4's physics_lists (G4HadronicBuilder.hh, G4HadProcesses.hh,
// G4HadParticles.hh).
class G4HadronicBuilder {
 public:
  static void BuildFTFP_BERT(const std::vector<int>& pdg, bool bertini, const G4String& xs);
  static void BuildElastic(const std::vector<int>& pdg);
  static void BuildKaonsFTFP_BERT();
  static void BuildHyperonsFTFP_BERT();
};
class G4HadProcesses {
 public:
  static bool AddInelasticCrossSection(const G4ParticleDefinition* particle,
                                       G4VCrossSectionDataSet* xs);
  static bool AddElasticCrossSection(const G4ParticleDefinition* particle,
                                     G4VCrossSectionDataSet* xs);
};
class G4HadParticles {
 public:
  static const std::vector<int>& GetHeavyChargedParticles();
};
class G4HadronicParameters {
 public:
  static G4HadronicParameters* Instance();
  void SetVerboseLevel(int value);
};
// --- tracking and run ------------------------------------------------------------------------
class G4SteppingManager;

// G4Step (G4Step.hh): made only to check the layout that the stepping action reads.
class G4Step {
 public:
  G4Step();
  ~G4Step();
};

// G4UserSteppingAction (G4UserSteppingAction.hh): the virtual functions in the order of the
// exported vtable (destructor, SetSteppingManagerPointer, UserSteppingAction).
class G4UserSteppingAction {
 public:
  G4UserSteppingAction();
  virtual ~G4UserSteppingAction() {}
  virtual void SetSteppingManagerPointer(G4SteppingManager* manager);
  virtual void UserSteppingAction(const G4Step*) {}

 protected:
  G4SteppingManager* fpSteppingManager;
};

class G4RunManager {
 public:
  static G4RunManager* GetRunManager();
  void SetUserAction(G4UserSteppingAction* action);
};
